"""create_app(config_path): reads the settings and wires everything. Nothing else."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine

from provider import demo, observability, web
from provider.audit import audit
from provider.clock import Clock, SystemClock
from provider.directory import Directory
from provider.directory.builtin import BuiltinDirectory
from provider.directory.keycloak import KeycloakDirectory
from provider.directory.keycloak_api import KeycloakApi
from provider.directory.passwords import HashParameters, PasswordHasher
from provider.enrollment import EnrollmentStore
from provider.enrollment.keycloak import KeycloakEnrollmentStore
from provider.enrollment.sql import SqlEnrollmentStore
from provider.errors import ConfigurationError
from provider.login import views as login_views
from provider.login.engine import LoginEngine
from provider.login.services import Services
from provider.login.state import FlowStore
from provider.login.throttle import Throttle
from provider.oidc import views as oidc_views
from provider.oidc.keys import SigningKeys
from provider.oidc.server import TwostepAuthorizationServer
from provider.oidc.sessions import SessionStore
from provider.oidc.tokens import TokenService
from provider.proxies import TrustedProxies
from provider.settings import (
    BuiltinDirectorySettings,
    KeycloakDirectorySettings,
    KeycloakEnrollmentSettings,
    Settings,
    load_settings,
)
from provider.storage.encryption import Encryptor
from provider.storage.sql import open_database
from provider.storage.state import StateStore, open_state_store

DEFAULT_CONFIG = "config/demo.yaml"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
log = logging.getLogger("twostep")


@dataclass(frozen=True)
class Twostep:
    """Everything a request may need, built once per process."""

    settings: Settings
    clock: Clock
    state: StateStore
    directory: Directory
    enrollments: EnrollmentStore
    keys: SigningKeys
    tokens: TokenService
    sessions: SessionStore
    engine: LoginEngine
    server: TwostepAuthorizationServer


def config_path(explicit: str | None = None) -> str:
    return explicit or os.environ.get("TWOSTEP_CONFIG") or DEFAULT_CONFIG


def build(settings: Settings, clock: Clock | None = None) -> Twostep:
    clock = clock or SystemClock()
    state = open_state_store(settings.state.url, clock, prefix=settings.state.prefix,
                             timeout=settings.state.timeout, pool_size=settings.state.pool_size)
    database = open_database(settings.storage.url, settings.base_dir) if _needs_database(settings) else None
    keycloak = keycloak_api(settings, clock)
    directory = open_directory(settings, database, keycloak)
    enrollments = open_enrollments(settings, database, keycloak)
    keys = SigningKeys.load_or_create(settings.resolve(settings.keys.path))
    tokens = TokenService(state, keys, clock, settings.tokens, settings.issuer)
    sessions = SessionStore(state, clock, settings.tokens.session_ttl)
    services = Services(directory=directory, clock=clock, enrollments=enrollments, state=state,
                        encryptor=encryptor(settings), channels=settings.parsed_channels,
                        throttle=Throttle(state, clock, settings.lockout))
    engine = LoginEngine(settings.parsed_flows, FlowStore(state, clock), services, clock, settings.state.flow_ttl)
    server = TwostepAuthorizationServer(settings, tokens, keys, directory, clock)
    return Twostep(settings, clock, state, directory, enrollments, keys, tokens, sessions, engine, server)


def encryptor(settings: Settings) -> Encryptor | None:
    key = settings.encryption_key
    older = [old.get_secret_value() for old in settings.encryption_keys]
    return Encryptor.from_secrets(key.get_secret_value(), older) if key else None


def keycloak_api(settings: Settings, clock: Clock | None = None) -> KeycloakApi | None:
    """The connection to Keycloak (one service-account token for directory and enrolments),
    or None when the directory is not Keycloak."""
    kc = settings.directory
    if not isinstance(kc, KeycloakDirectorySettings):
        return None
    verify = str(settings.resolve(kc.ca_file)) if kc.ca_file else True
    return KeycloakApi(kc.url, kc.realm, kc.client_id, kc.client_secret.get_secret_value(),
                       clock=clock or SystemClock(), timeout=kc.timeout, verify=verify)


def open_directory(settings: Settings, database: Engine | None = None,
                   keycloak: KeycloakApi | None = None) -> Directory:
    if isinstance(settings.directory, KeycloakDirectorySettings):
        return KeycloakDirectory(keycloak or keycloak_api(settings))
    return open_user_admin(settings, database)


def open_user_admin(settings: Settings, database: Engine | None = None) -> BuiltinDirectory:
    """The built-in directory, which `twostep users` manages; a Keycloak realm is managed in Keycloak."""
    directory = settings.directory
    if not isinstance(directory, BuiltinDirectorySettings):
        raise ConfigurationError(f"`twostep users` manages the built-in directory, but these settings use"
                                 f" directory.type {directory.type}: manage users, passwords and groups in"
                                 " Keycloak's admin console")
    p = directory.password_hash
    hasher = PasswordHasher(HashParameters(p.memory_cost, p.time_cost, p.parallelism))
    return BuiltinDirectory(database or open_database(settings.storage.url, settings.base_dir), hasher)


def open_enrollments(settings: Settings, database: Engine | None = None,
                     keycloak: KeycloakApi | None = None) -> EnrollmentStore:
    """The enrolment store; kept in Keycloak, it first checks that the realm's user profile keeps
    twostep's attributes, and refuses to start otherwise."""
    if isinstance(settings.enrollments, KeycloakEnrollmentSettings):
        api = keycloak or keycloak_api(settings)
        if api is None:  # load_settings refuses this; settings built by hand may not
            raise ConfigurationError("enrollments.type keycloak needs directory.type keycloak")
        store = KeycloakEnrollmentStore(api, encryptor(settings))
        store.check_user_profile(name for name, channel in settings.parsed_channels.items()
                                 if channel.self_enrollment)  # RSA tokens are not registrations here
        return store
    return SqlEnrollmentStore(database or open_database(settings.storage.url, settings.base_dir),
                              encryptor(settings))


def _needs_database(settings: Settings) -> bool:
    """A sidecar whose users and enrolments are both in Keycloak needs no database of its own."""
    return not (isinstance(settings.directory, KeycloakDirectorySettings)
                and isinstance(settings.enrollments, KeycloakEnrollmentSettings))


def create_app(path: str | None = None, *, clock: Clock | None = None) -> Flask:
    settings = load_settings(config_path(path))
    twostep = build(settings, clock)
    # Authlib logs every issued token at DEBUG ("Issue token ..."): never let that level through.
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger("authlib").level))
    app = Flask(__name__, template_folder=str(TEMPLATES), static_folder=str(TEMPLATES / "static"))
    app.secret_key = settings.secret_key.get_secret_value()
    app.extensions["twostep"] = twostep
    web.install(app, https=settings.is_https, image_origin=settings.branding.logo_origin)
    app.jinja_env.globals["branding"] = settings.branding
    app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)
    twostep.server.init_app(app)
    app.register_blueprint(oidc_views.bp)
    app.register_blueprint(login_views.bp)
    observability.install(app)  # /healthz, /readyz, /metrics, request ids and access log
    if settings.demo and settings.demo.relying_party:
        app.register_blueprint(demo.bp)
        _seed_demo_users(settings, twostep.directory)
    audit("config.loaded", issuer=settings.issuer, clients=len(settings.clients),
          flows=",".join(sorted(settings.parsed_flows)), channels=",".join(sorted(settings.parsed_channels)))
    for warning in settings.warnings:
        log.warning("settings: %s", warning)
    return app


def _seed_demo_users(settings: Settings, directory: BuiltinDirectory) -> None:
    for user in settings.demo.users:
        if directory.find(user.username) is None:
            directory.add_user(user.username, user.password.get_secret_value(), name=user.name, email=user.email)
