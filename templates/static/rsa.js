// The show/hide eye of the RSA SecurID passcode field. Without this script the button stays
// hidden and the field works as an ordinary password field.
"use strict";
document.querySelectorAll("button[data-reveal]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-reveal"));
  if (!field) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    var show = field.type === "password";
    field.type = show ? "text" : "password";
    button.setAttribute("aria-pressed", show ? "true" : "false");
    field.focus();
  });
});
