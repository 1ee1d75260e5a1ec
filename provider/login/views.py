"""The login pages: GET renders the current step, POST submits it and always answers with a
303 redirect (post/redirect/get). Everything else is the engine's business."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from provider.login.outcomes import Done, Fail
from provider.login.state import FlowNotFound
from provider.oidc.views import RESTART, finish_login
from provider.web import browser_token, check_csrf, error_page

bp = Blueprint("login", __name__)


@bp.get("/login/<flow_id>")
def show(flow_id: str):
    engine = current_app.extensions["twostep"].engine
    try:
        screen = engine.current(engine.load(flow_id, browser_token()), request.remote_addr)
    except FlowNotFound:
        return _expired()
    return render_template(f"{screen.screen}.html", flow_id=flow_id, **screen.values)


@bp.post("/login/<flow_id>")
def submit(flow_id: str):
    check_csrf()
    engine = current_app.extensions["twostep"].engine
    try:
        state = engine.load(flow_id, browser_token())
    except FlowNotFound:
        return _expired()
    outcome = engine.submit(state, request.form.get("version", ""), request.form, request.remote_addr)
    if isinstance(outcome, Done):
        return finish_login(outcome.state)
    if isinstance(outcome, Fail):
        return error_page(outcome.message, 403, restart=session.get(RESTART))
    return redirect(url_for("login.show", flow_id=flow_id), 303)


def _expired():
    return error_page("Your sign-in session expired.", 410, restart=session.get(RESTART))
