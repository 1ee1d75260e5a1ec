// The SMS screens, made nicer when JavaScript runs; both work without it.
// - Confirmation of the number: the <dialog> the page shows open becomes a modal over the
//   phone form (Escape closes it and returns to the number, which can be edited).
// - Resend OTP: disabled, with a visible countdown, until the cooldown has passed. The server
//   refuses an early resend anyway.
"use strict";
(function () {
  var dialog = document.getElementById("confirm-phone");
  if (dialog && typeof dialog.showModal === "function") {
    var entry = document.getElementById("phone-entry");
    dialog.close();
    dialog.classList.add("modal");
    if (entry) {
      entry.classList.remove("behind-dialog");
    }
    dialog.showModal();
    dialog.addEventListener("close", function () {
      var phone = document.getElementById("phone");
      if (phone) {
        phone.focus();
        phone.select();
      }
    });
  }

  var resend = document.getElementById("resend");
  var status = document.getElementById("resend-wait");
  var wait = resend ? parseInt(resend.getAttribute("data-wait") || "0", 10) : 0;
  if (!resend || !status || !(wait > 0)) {
    return;
  }
  // The button counts down visibly; the live region speaks only at the start (the page's own
  // text) and at the end, not every second.
  var deadline = Date.now() + wait * 1000;
  var label = resend.textContent;
  function tick() {
    var left = Math.ceil((deadline - Date.now()) / 1000);
    if (left > 0) {
      resend.disabled = true;
      resend.textContent = label + " (" + left + " s)";
      window.setTimeout(tick, 250);
    } else {
      resend.disabled = false;
      resend.textContent = label;
      status.textContent = "You can ask for a new code now.";
    }
  }
  tick();
})();
