"""What every page shares: the browser-binding token, CSRF tokens, security headers, the
error page. Kept apart so views stay thin."""
from __future__ import annotations

import hmac
import secrets

from flask import Flask, Response, abort, render_template, request, session

from provider.errors import TwostepError

BROWSER = "browser"
CSRF = "csrf"
# Endpoints that relying parties call with a JSON client: their errors are JSON (RFC 6749 5.2).
JSON_ENDPOINTS = ("/token", "/userinfo", "/introspect", "/revoke")
RETRY_AFTER = "5"  # seconds, on 503: a dependency may be back by then


def browser_token() -> str:
    """A random token for this browser, kept in the signed session cookie: flows are bound
    to the browser that started them."""
    if BROWSER not in session:
        session[BROWSER] = secrets.token_urlsafe(24)
    return session[BROWSER]


def csrf_token() -> str:
    if CSRF not in session:
        session[CSRF] = secrets.token_urlsafe(24)
    return session[CSRF]


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get(CSRF, "")
    if not expected or not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode()):
        abort(400, description="This form has expired. Go back, reload the page and try again.")


def error_page(message: str, status: int, restart: str | None = None) -> tuple[str, int]:
    return render_template("error.html", message=message, restart=restart), status


def install(app: Flask, *, https: bool, image_origin: str | None = None) -> None:
    """Cookie settings, the CSRF helper for templates, security headers and error pages."""
    app.config.update(
        SESSION_COOKIE_NAME="__Host-twostep" if https else "twostep",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_FORM_MEMORY_SIZE=64 * 1024,
    )
    app.jinja_env.globals["csrf_token"] = csrf_token

    # data: for the enrolment QR code (an inline PNG); an operator's logo may live elsewhere.
    images = " ".join(filter(None, ["'self'", "data:", image_origin]))
    csp = f"default-src 'self'; img-src {images}; frame-ancestors 'none'"

    @app.after_request
    def security_headers(response: Response) -> Response:
        if response.mimetype == "text/html":
            response.headers.setdefault(
                "Content-Security-Policy", csp)
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.errorhandler(TwostepError)
    def twostep_error(error: TwostepError):
        app.logger.warning("request failed: %s: %s", error.code, error.detail)
        status = 503 if error.code == "unavailable" else 500
        headers = {"Retry-After": RETRY_AFTER} if status == 503 else {}
        if request.path in JSON_ENDPOINTS:
            code = "temporarily_unavailable" if status == 503 else "server_error"
            return _json_error(code, error.user_message, status, headers)
        page, status = error_page(error.user_message, status)
        return page, status, headers

    for status in (400, 404, 405, 413):
        app.register_error_handler(status, _http_error)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        app.logger.exception("unexpected error")
        message = "Something went wrong on our side. Please try again."
        if request.path in JSON_ENDPOINTS:
            return _json_error("server_error", message, 500)
        return error_page(message, 500)


def _http_error(error):
    messages = {404: "This page does not exist.", 405: "This page cannot be used that way.",
                413: "That request was too large."}
    message = messages.get(error.code) or error.description or "That request was not understood."
    if error.code == 400 and not isinstance(error.description, str):
        message = "That request was not understood."
    if request.path in JSON_ENDPOINTS:
        return {"error": "invalid_request", "error_description": message}, error.code
    return error_page(message, error.code)


def _json_error(code: str, message: str, status: int, headers: dict[str, str] | None = None):
    return {"error": code, "error_description": message}, status, {"Cache-Control": "no-store", **(headers or {})}
