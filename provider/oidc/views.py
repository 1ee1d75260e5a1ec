"""The OIDC endpoints. Thin: each turns HTTP into a call on the authorization server or the
login engine and back."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from joserfc.errors import JoseError

from provider.audit import audit
from provider.login.state import FlowState
from provider.oidc.claims import user_claims
from provider.oidc.server import FinishedLogin
from provider.oidc.sessions import SsoSession
from provider.oidc.tokens import new_grant_id
from provider.web import browser_token, check_csrf, error_page

bp = Blueprint("oidc", __name__)

RESTART = "restart"
MAX_PARAMETER = 2048


def twostep():
    return current_app.extensions["twostep"]


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    issuer = twostep().settings.issuer
    scopes = sorted({s for c in twostep().settings.clients for s in c.scopes})
    return jsonify({  # OIDC Discovery 1.0 section 3, RFC 8414, RFC 9207
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                             "name", "preferred_username", "email", "email_verified", "phone_number"],
        "prompt_values_supported": ["none", "login"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
    })


@bp.errorhandler(OAuth2Error)
def oauth2_error(error: OAuth2Error) -> Response:
    """An OAuth error Authlib raises before its own error handling (insecure_transport, when the
    Host header names a non-loopback http address) is still an RFC 6749 5.2 answer, not a 500."""
    current_app.logger.info("OAuth request refused: %s", error.error)
    return twostep().server.handle_error_response(None, error)


@bp.get("/jwks")
def jwks() -> Response:
    return jsonify(twostep().keys.public_jwks())


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    app = twostep()
    if any(len(v) > MAX_PARAMETER for v in request.values.values()):
        return error_page("The sign-in request is too long.", 400)
    sso = _usable_session(app)
    try:
        grant = app.server.get_consent_grant(end_user=sso)
        _check_max_age(grant.redirect_uri)
    except OAuth2Error as error:
        return _authorization_error(error)
    flow = _requested_flow(app, grant.client.settings)
    if sso is not None:
        return _authorization_response(grant.request, _login_from(sso, flow), status=302)
    state = app.engine.start(flow=flow, client_id=grant.client.get_client_id(),
                             request=_single_values(grant.request), browser_token=browser_token())
    audit("login.started", client_id=state.client_id, flow=flow, ip=request.remote_addr)
    session[RESTART] = _restart_path(grant.request)
    return redirect(url_for("login.show", flow_id=state.id), 302)


@bp.route("/token", methods=["POST"])
def token() -> Response:
    response = twostep().server.create_token_response()
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/revoke", methods=["POST"])
def revoke() -> Response:
    return twostep().server.create_endpoint_response("revocation")


@bp.route("/introspect", methods=["POST"])
def introspect() -> Response:
    response = twostep().server.create_endpoint_response("introspection")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    app = twostep()
    access = app.tokens.validate_access_token(_bearer_token())
    user = app.server.active_user(access.claims["sub"]) if access else None
    if user is None:
        # RFC 6750 3.1
        return jsonify(error="invalid_token"), 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    claims = user_claims(user, access.scope, app.server.groups_claim)
    return jsonify(claims), 200, {"Cache-Control": "no-store"}


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """RP-Initiated Logout 1.0. Without a valid id_token_hint the user confirms first, so a
    third-party page cannot sign people out."""
    app = twostep()
    hint = _id_token_hint(request.values.get("id_token_hint", ""))
    client_id = (hint or {}).get("aud") or request.values.get("client_id")
    target = request.values.get("post_logout_redirect_uri")
    client = app.settings.client(client_id) if isinstance(client_id, str) else None
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return error_page("The application asked to return to an address it has not registered.", 400)
    sso = app.sessions.get(request.cookies.get(_sso_cookie()))
    confirmed = request.method == "POST" and request.form.get("confirm") == "yes"
    if confirmed:
        check_csrf()
    if sso and not confirmed and (hint is None or hint.get("sub") != sso.user_id):
        return render_template("logout.html", values=request.values), 200
    if sso:
        app.sessions.end(sso.id)
    response = (redirect(add_params_to_uri(target, _state_param()), 303) if target
                else Response(render_template("logged_out.html"), 200))
    response.delete_cookie(_sso_cookie(), path="/", secure=app.settings.is_https)
    return response


def finish_login(state: FlowState) -> Response:
    """A flow is done: start a fresh SSO session and answer the stored authorization request."""
    app = twostep()
    previous = app.sessions.get(request.cookies.get(_sso_cookie()))
    if previous:
        app.sessions.end(previous.id)  # a new id at every login: no session fixation
    amr = (*state.amr, "mfa") if len(state.amr) >= 2 else state.amr
    sso = app.sessions.create(state.user_id, amr, state.flow, previous)
    login = _login_from(sso, state.flow)
    audit("login.succeeded", user_id=state.user_id, username=state.username, client_id=state.client_id,
          flow=state.flow, ip=request.remote_addr, outcome="success", amr=",".join(amr))
    req = OAuth2Request("GET", f"{app.settings.issuer}/authorize")
    req.payload = BasicOAuth2Payload(state.request)
    response = _authorization_response(req, login, status=303)
    response.set_cookie(_sso_cookie(), sso.id, max_age=app.settings.tokens.session_ttl, httponly=True,
                        samesite="Lax", secure=app.settings.is_https, path="/")
    session.pop(RESTART, None)
    return response


def _sso_cookie() -> str:
    # The __Host- prefix pins the cookie to this host, path / and https (RFC 6265bis 4.1.3.2).
    return "__Host-twostep-sso" if twostep().settings.is_https else "twostep_sso"


def _authorization_response(req: OAuth2Request, login: FinishedLogin, status: int) -> Response:
    server = twostep().server
    grant = server.get_authorization_grant(req)
    response = server.create_authorization_response(request=req, grant_user=login, grant=grant)
    if response.status_code == 302:
        response.status_code = status
    return response


def _authorization_error(error: OAuth2Error):
    """RFC 6749 4.1.2.1: never redirect before the client and redirect_uri are known good."""
    if not error.redirect_uri:
        current_app.logger.info("authorization request refused: %s", error.error)
        return error_page("The application sent an invalid sign-in request. "
                          "Go back to the application and try again.", 400)
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    params += _state_param()
    params.append(("iss", twostep().settings.issuer))  # RFC 9207 2
    return redirect(add_params_to_uri(error.redirect_uri, params), 302)


def _usable_session(app) -> SsoSession | None:
    """The SSO session, if this request may reuse it (no prompt=login, max_age satisfied,
    and the requested flow already completed in it)."""
    sso = app.sessions.get(request.cookies.get(_sso_cookie()))
    client = app.settings.client(request.values.get("client_id", ""))
    if sso is None or client is None or "login" in request.values.get("prompt", "").split():
        return None
    max_age = request.values.get("max_age", "")
    max_age_seconds = int(max_age) if _is_max_age(max_age) else None
    flow = _requested_flow(app, client)
    return sso if sso.satisfies(flow, max_age_seconds, app.clock.now()) else None


def _requested_flow(app, client) -> str:
    """The client's flow, unless acr_values asks for a flow with that acr (step-up)."""
    acr_values = request.values.get("acr_values", "")
    return (app.settings.flow_for_acr(acr_values) if acr_values else None) or client.flow


def _check_max_age(redirect_uri: str) -> None:
    value = request.values.get("max_age")
    if value is not None and not _is_max_age(value):
        raise InvalidRequestError("'max_age' must be a non-negative integer.", redirect_uri=redirect_uri)


def _is_max_age(value: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return value.isascii() and value.isdigit() and len(value) <= 9


def _login_from(sso: SsoSession, flow: str) -> FinishedLogin:
    # The flow's own acr; without one, Keycloak's levels of assurance: 1 one factor, 2 two.
    acr = twostep().settings.parsed_flows[flow].acr or ("2" if "mfa" in sso.amr else "1")
    return FinishedLogin(user_id=sso.user_id, grant_id=new_grant_id(), auth_time=sso.auth_time,
                         amr=sso.amr, acr=acr, sid=sso.sid)


def _single_values(req: OAuth2Request) -> dict[str, str]:
    return {key: values[0] for key, values in req.payload.datalist.items() if values}


def _restart_path(req: OAuth2Request) -> str:
    """Where 'start again' goes: the same authorization request, as a local path only. The query
    is encoded here, not by url_for, whose own arguments (endpoint, _external, _scheme, _anchor,
    _method) a request could otherwise name."""
    return f"{url_for('oidc.authorize')}?{urlencode(_single_values(req))}"


def _state_param() -> list[tuple[str, str]]:
    state = request.values.get("state")
    return [("state", state)] if state else []


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return request.form.get("access_token", "")  # RFC 6750 2.2
    return ""


def _id_token_hint(token: str) -> dict[str, Any] | None:
    """The claims of an ID token we signed (expired ones too: OIDC RP-Initiated Logout 2)."""
    if not token or len(token) > 8192:
        return None
    try:
        decoded = twostep().keys.verify(token)
    except (JoseError, ValueError):
        return None
    claims = decoded.claims
    if claims.get("iss") != twostep().settings.issuer or decoded.header.get("typ") == "at+jwt":
        return None
    return claims
