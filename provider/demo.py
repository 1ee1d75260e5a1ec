"""The demo relying party: a page served by the same process (only when the settings name a
`demo.relying_party`) that signs in through twostep with the authorization code flow and PKCE,
exactly as an application would, then shows the ID token claims and userinfo."""
from __future__ import annotations

import base64
import hashlib
import secrets

import requests
from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.jwk import KeySet

from provider.web import check_csrf

bp = Blueprint("demo", __name__, url_prefix="/demo")


def _client():
    app = current_app.extensions["twostep"]
    return app.settings, app.settings.client(app.settings.demo.relying_party)


@bp.get("/")
def home():
    return render_template("demo.html", result=session.get("demo_result"))


@bp.post("/signin")
def signin():
    check_csrf()
    _, client = _client()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    session["demo_request"] = {"state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
                               "verifier": verifier}
    query = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
             "scope": "openid profile email", "state": session["demo_request"]["state"],
             "nonce": session["demo_request"]["nonce"], "code_challenge": challenge,
             "code_challenge_method": "S256"}
    if request.form.get("force_login"):
        query["prompt"] = "login"
    return redirect(url_for("oidc.authorize", **query), 303)


@bp.get("/callback")
def callback():
    settings, client = _client()
    pending = session.pop("demo_request", None)
    if pending is None or request.args.get("state") != pending["state"]:
        abort(400, description="This sign-in response does not match a request from this page.")
    if request.args.get("iss") != settings.issuer:  # RFC 9207 2.4
        abort(400, description="The sign-in response came from an unexpected issuer.")
    if "error" in request.args:
        session["demo_result"] = {"error": request.args["error"]}
        return redirect(url_for("demo.home"))
    session["demo_result"] = _redeem(settings, client, request.args.get("code", ""), pending)
    return redirect(url_for("demo.home"))


@bp.post("/signout")
def signout():
    check_csrf()
    result = session.pop("demo_result", None) or {}
    _, client = _client()
    target = client.post_logout_redirect_uris[0] if client.post_logout_redirect_uris else None
    params = {"id_token_hint": result.get("id_token", "")}
    if target:
        params["post_logout_redirect_uri"] = target
    return redirect(url_for("oidc.logout", **params), 303)


def _redeem(settings, client, code: str, pending: dict) -> dict:
    """Back channel, over real HTTP to our own issuer, as any relying party would."""
    secret = client.client_secret.get_secret_value() if client.client_secret else None
    auth = (client.client_id, secret) if secret else None
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
            "code_verifier": pending["verifier"]}
    if auth is None:
        form["client_id"] = client.client_id
    tokens = requests.post(f"{settings.issuer}/token", data=form, auth=auth, timeout=10).json()
    if "id_token" not in tokens:
        return {"error": tokens.get("error", "token request failed")}
    # Verified against the published JWKS, as a relying party elsewhere would.
    jwks = KeySet.import_key_set(requests.get(f"{settings.issuer}/jwks", timeout=10).json())
    claims = jwt.decode(tokens["id_token"], jwks, algorithms=["RS256"]).claims
    if claims.get("nonce") != pending["nonce"] or claims.get("aud") != client.client_id:
        return {"error": "the ID token does not belong to this sign-in"}
    userinfo = requests.get(f"{settings.issuer}/userinfo", timeout=10,
                            headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    return {"claims": claims, "userinfo": userinfo, "id_token": tokens["id_token"]}
