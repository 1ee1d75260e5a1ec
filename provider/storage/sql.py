"""The durable database: users, enrolments and signing keys. SQLite for one instance,
PostgreSQL for several.

Every durable table is declared on ``metadata`` by the module that owns it; importing
those modules before ``open_database`` (or calling ``ensure_schema`` again afterwards)
is what gets their tables created.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool

from provider.errors import ConfigurationError, ServiceUnavailable

metadata = sqlalchemy.MetaData()

ACCEPTED_SCHEMES = ("sqlite://", "postgresql://")
SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = "10"
SCHEMA_LOCK = 0x7477_6F73_7465_70  # "twostep": the advisory lock held while creating tables


def open_database(url: str, base_dir: pathlib.Path) -> sqlalchemy.Engine:
    """An engine for ``url`` with the schema in place.

    ``base_dir`` (the folder of the settings file) anchors relative SQLite paths, so the
    database does not move when the server is started from another working directory.
    """
    engine = _create_engine(_parse(url), base_dir)
    what = f"cannot open the database at {_redacted(url)}"
    with unavailable_on_failure(what, engine.url.password):
        ensure_schema(engine)
    return engine


def ensure_schema(engine: sqlalchemy.Engine) -> None:
    """Create the tables registered on ``metadata`` that do not exist yet.

    On PostgreSQL, under a transaction-scoped advisory lock: gunicorn workers or instances
    starting together on an empty database would otherwise race to create the same tables,
    and the loser's worker would fail to boot.
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        metadata.create_all(connection)


@contextmanager
def unavailable_on_failure(what: str, password: str | None = None) -> Iterator[None]:
    """Turn "the database cannot be reached" into ServiceUnavailable, so callers show
    "try again shortly" instead of an internal error. Bugs (bad SQL) still propagate.

    The driver's reason is kept for the operator, with ``password`` masked should the
    driver ever echo it; the original exception is not chained, for the same reason.
    """
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        reason = _first_line(exc.orig)
        if password:
            reason = reason.replace(password, "***")
        raise ServiceUnavailable(f"{what}: {reason}") from None


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(_unknown_scheme(url)) from None
    if parsed.drivername not in ("sqlite", "postgresql"):
        raise ConfigurationError(_unknown_scheme(url))
    return parsed


def _unknown_scheme(url: str) -> str:
    scheme = url.split(":", 1)[0] if ":" in url else url
    accepted = ", ".join(ACCEPTED_SCHEMES)
    return f"database url scheme {scheme!r} is not supported; use one of: {accepted}"


def _create_engine(url: URL, base_dir: pathlib.Path) -> sqlalchemy.Engine:
    if url.drivername == "sqlite":
        return _sqlite_engine(url, base_dir)
    return _postgres_engine(url)


def _sqlite_engine(url: URL, base_dir: pathlib.Path) -> sqlalchemy.Engine:
    if url.database in (None, "", ":memory:"):
        # One connection shared by all threads: each new connection would be a new,
        # empty in-memory database.
        engine = sqlalchemy.create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        path = _sqlite_path(url.database, base_dir)
        engine = sqlalchemy.create_engine(url.set(database=str(path)))
    sqlalchemy.event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _sqlite_path(database: str, base_dir: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(database)
    if not path.is_absolute():
        path = base_dir / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the folder for the SQLite database {path}: {exc.strerror}"
        ) from None
    return path


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers work while one process writes; foreign keys are off by default in
    SQLite; the busy timeout makes a writer wait for a lock instead of failing at once."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # a no-op ("memory") for in-memory databases
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _postgres_engine(url: URL) -> sqlalchemy.Engine:
    """psycopg 3, with a connect timeout so an unreachable server fails instead of hanging,
    and pre-ping so connections dropped by a restart are replaced, not handed out."""
    url = url.set(drivername="postgresql+psycopg")
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S})
    return sqlalchemy.create_engine(url, pool_pre_ping=True)


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _first_line(error: BaseException | None) -> str:
    text = str(error or "").strip()
    return text.splitlines()[0] if text else type(error).__name__
