"""A user in a real browser (Chromium, driven by Playwright): the browser tests' flow driver.

A :class:`Visitor` does what a person does, in one of :data:`MODES`: with the mouse, with the
keyboard only (Tab to a field or button, type, Enter), with JavaScript disabled, or on a
phone-sized screen. Tests say *what* to do (``submit("Login", username=..., password=...)``);
the mode decides *how*, so one test covers every way of using the pages.

Every screen is checked by :meth:`Visitor.expect` before the test goes on, whatever the mode:
one ``<h1>`` with the expected heading; every visible field has a label; focus starts in the
first field (or the one to correct); an error is named by its field's ``aria-describedby`` and
sits right under it; every POST form carries a CSRF token; nothing scrolls sideways; no
console error, CSP violation or failed stylesheet/script/image. Then a screenshot is saved.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importable without Playwright: tests.fixtures.browser reports it missing
    from playwright.sync_api import Locator, Page

DESKTOP = (960, 720)
PHONE = (390, 844)  # an iPhone 12-15's CSS pixels
MAX_TABS = 40
ERROR_GAP_PX = 48  # an error must start at most this far below its field
AUTOFOCUS_POLLS, AUTOFOCUS_POLL_MS = 20, 50


@dataclass(frozen=True)
class Mode:
    """How the visitor uses the pages."""

    name: str
    keyboard: bool = False
    javascript: bool = True
    viewport: tuple[int, int] = DESKTOP

    @property
    def phone(self) -> bool:
        return self.viewport == PHONE


MODES = {mode.name: mode for mode in (
    Mode("mouse"),
    Mode("keyboard", keyboard=True),
    Mode("no-js", javascript=False),
    Mode("phone", viewport=PHONE),
)}


@dataclass
class Screenshots:
    """Numbered PNGs in one folder per test: 01-login.png, 02-totp-enrol.png, ..."""

    folder: Path
    count: int = 0

    def save(self, page: Page, name: str) -> Path:
        self.count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        return path


# Runs in the page (also with JavaScript disabled: Playwright evaluates in its own world).
_SCREEN_FACTS = """() => {
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
                        && getComputedStyle(el).visibility !== 'hidden';
  const fields = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')].filter(visible);
  const describedBy = id => [...document.querySelectorAll('[aria-describedby]')]
        .filter(el => el.getAttribute('aria-describedby').split(/\\s+/).includes(id));
  const errors = [...document.querySelectorAll('.error')].filter(visible).map(error => {
    const refs = error.id ? describedBy(error.id) : [];
    const top = error.getBoundingClientRect().top;
    const gaps = refs.filter(r => r.matches('input, select, textarea'))
                     .map(r => top - r.getBoundingClientRect().bottom);
    return {id: error.id, text: error.textContent.trim(), referenced: refs.length > 0, gaps};
  });
  return {
    h1: [...document.querySelectorAll('h1')].map(h => h.textContent.trim()),
    title: document.title,
    unlabelled: fields.filter(f => !(f.labels && f.labels.length) && !f.getAttribute('aria-label')
                                   && !f.getAttribute('aria-labelledby')).map(f => f.name || f.id || f.outerHTML),
    fields: fields.map(f => ({name: f.name, empty: !f.value, invalid: f.getAttribute('aria-invalid') === 'true'})),
    focused: document.activeElement && document.activeElement !== document.body
             ? (document.activeElement.name || document.activeElement.id || document.activeElement.tagName) : null,
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    formsWithoutCsrf: [...document.forms].filter(f => f.method.toLowerCase() === 'post'
                                                   && !f.querySelector('input[name=csrf_token]')).length,
    errors,
  };
}"""


_FOCUSED = "() => { const e = document.activeElement; return e ? (e.name || e.id || e.textContent.trim()) : null }"


@dataclass
class Visitor:
    page: Page
    mode: Mode
    screenshots: Screenshots
    allowed_console: list[re.Pattern[str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # console errors and failed loads, as they happen

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        self.page.on("response", self._on_response)

    # -- what a user does ---------------------------------------------------------------

    def open(self, url: str) -> None:
        self.page.goto(url)

    def submit(self, button: str, **fields: str) -> None:
        """Fill these fields (by name) and submit with this button; waits for the next page."""
        target = self._button(button)
        with self.page.expect_navigation():
            if not self.mode.keyboard:
                for name, value in fields.items():
                    self._field(name).fill(value)
                self._activate(target)
                return
            for name, value in fields.items():
                self._tab_to(self._field(name))
                self.page.keyboard.press("Control+A")
                self.page.keyboard.type(value)
            if fields and self._is_default_button(target):
                self.page.keyboard.press("Enter")  # implicit submission, as people do
            else:
                self._tab_to(target)
                self.page.keyboard.press("Enter")

    def press(self, what: str | Locator) -> None:
        """Activate a button or link (by its visible name, or a locator); waits for the next page."""
        target = self._button(what) if isinstance(what, str) else what
        with self.page.expect_navigation():
            if self.mode.keyboard:
                self._tab_to(target)
                self.page.keyboard.press("Enter")
            else:
                self._activate(target)

    # -- what a user sees ---------------------------------------------------------------

    def expect(self, heading: str, screen: str) -> None:
        """Check this screen (see the module's docstring) and save its screenshot as `screen`."""
        self.page.wait_for_load_state("load")
        facts = self._facts()
        problems = self._screen_problems(facts, heading)
        self.screenshots.save(self.page, screen)
        assert not problems, f"{screen} ({self.mode.name}, {self.page.url}):\n  " + "\n  ".join(problems)

    def error_for(self, name: str) -> str:
        """The error message the field names in its aria-describedby."""
        ids = (self._field(name).get_attribute("aria-describedby") or "").split()
        texts = [self.page.locator(f"#{i}.error").text_content() or "" for i in ids
                 if self.page.locator(f"#{i}.error").count()]
        assert texts, f"no error is attached to the field {name!r}"
        return " ".join(t.strip() for t in texts)

    def text(self, selector: str) -> str:
        return (self.page.locator(selector).text_content() or "").strip()

    def json(self, selector: str) -> Any:
        return json.loads(self.text(selector))

    def allow_console(self, *patterns: str) -> None:
        """Console messages matching these are not problems (a known issue, named by its test)."""
        self.allowed_console.extend(re.compile(p) for p in patterns)

    # -- the demo relying party -----------------------------------------------------------

    def sign_in_at_demo(self, base_url: str, username: str, password: str) -> None:
        """From the demo application's home page through twostep's password step."""
        self.open(f"{base_url}/demo/")
        self.expect("Demo application", "demo")
        self.press("Sign in")
        self.expect("Sign in", "login")
        self.submit("Login", username=username, password=password)

    def claims(self) -> dict[str, Any]:
        """The ID token claims the demo application shows after a sign-in."""
        return self.json("#claims")

    # -- internals ------------------------------------------------------------------------

    def _facts(self) -> dict[str, Any]:
        """The screen's facts, once autofocus has happened: Chromium applies it at the first
        rendering update, which may come after the load event."""
        facts = self.page.evaluate(_SCREEN_FACTS)
        for _ in range(AUTOFOCUS_POLLS):
            if facts["focused"] or not facts["fields"]:
                break
            self.page.wait_for_timeout(AUTOFOCUS_POLL_MS)
            facts = self.page.evaluate(_SCREEN_FACTS)
        return facts

    def _field(self, name: str) -> Locator:
        return self.page.locator(f'[name="{name}"]:visible')

    def _button(self, name: str) -> Locator:
        exact = re.compile(rf"^\s*{re.escape(name)}\s*$")
        return self.page.get_by_role("button", name=exact).or_(self.page.get_by_role("link", name=exact)).first

    def _activate(self, target: Locator) -> None:
        if self.mode.phone:
            target.tap()  # a finger: touch events, no hover
        else:
            target.click()

    def _tab_to(self, target: Locator) -> None:
        seen = []
        for _ in range(MAX_TABS):
            if target.evaluate("el => el === document.activeElement"):
                return
            self.page.keyboard.press("Tab")
            seen.append(self.page.evaluate(_FOCUSED))
        raise AssertionError(f"Tab never reached {target}; focus went through {seen}")

    @staticmethod
    def _is_default_button(button: Locator) -> bool:
        return button.evaluate("b => !!b.form && b.form.querySelector("
                               "'button:not([type=button]):not([type=reset]), input[type=submit]') === b")

    def _screen_problems(self, facts: dict[str, Any], heading: str) -> list[str]:
        problems = list(self.problems)
        self.problems.clear()
        if facts["h1"] != [heading]:
            problems.append(f"expected one <h1> {heading!r}, found {facts['h1']}")
        if " · " not in facts["title"]:
            problems.append(f"the title {facts['title']!r} does not name the step and the issuer")
        problems += [f"field without a label: {name}" for name in facts["unlabelled"]]
        expected = _first_to_fill(facts["fields"])
        if expected is not None and facts["focused"] != expected:
            problems.append(f"focus should start in {expected!r}, it is on {facts['focused']!r}")
        if facts["overflow"] > 0:
            problems.append(f"the page scrolls sideways by {facts['overflow']} px")
        if facts["formsWithoutCsrf"]:
            problems.append(f"{facts['formsWithoutCsrf']} POST form(s) without a CSRF token")
        if facts["fields"]:
            problems += _misplaced_errors(facts["errors"])
        return problems

    def _on_console(self, message: Any) -> None:
        if message.text.startswith("Failed to load resource:"):
            return  # an error page's own status (403, 410), or a subresource: see _on_response
        if message.type == "error" and not any(p.search(message.text) for p in self.allowed_console):
            self.problems.append(f"console error: {message.text}")

    def _on_response(self, response: Any) -> None:
        if response.status >= 400 and response.request.resource_type in ("stylesheet", "script", "image", "font"):
            self.problems.append(f"{response.request.resource_type} failed: {response.status} {response.url}")


def _first_to_fill(fields: Iterable[dict[str, Any]]) -> str | None:
    """Where focus belongs: the first field marked invalid, else the first empty one, else the first."""
    fields = list(fields)
    for wanted in (lambda f: f["invalid"], lambda f: f["empty"], lambda f: True):
        found = next((f["name"] for f in fields if wanted(f)), None)
        if found is not None:
            return found
    return None


def _misplaced_errors(errors: Iterable[dict[str, Any]]) -> list[str]:
    problems = []
    for error in errors:
        if not error["referenced"]:
            problems.append(f"error {error['text']!r} is not named by the aria-describedby of what it concerns")
        elif error["gaps"] and not any(0 <= gap <= ERROR_GAP_PX for gap in error["gaps"]):
            problems.append(f"error {error['text']!r} is not right under its field (gaps {error['gaps']} px)")
    return problems
