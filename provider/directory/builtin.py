"""The built-in directory: users in the SQL database with argon2id password hashes,
managed with `twostep users ...`.

Usernames are kept as typed but compared case-insensitively (NFKC, then casefold), so
"Alice", "ALICE" and "ａｌｉｃｅ" are one account and cannot be registered twice.
"""

from __future__ import annotations

import json
import logging
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from provider.clock import Clock, SystemClock
from provider.directory import User
from provider.directory.passwords import PasswordHasher
from provider.errors import AccountDisabled, InvalidCredentials, ServiceUnavailable
from provider.storage.sql import metadata, unavailable_on_failure

log = logging.getLogger(__name__)

MAX_USERNAME_LENGTH = 255
# Longer input is no one's password: reject it before argon2 spends time on it.
MAX_INPUT_LENGTH = 1024
# One detail for both failures, so even the log line cannot be used to probe usernames.
WRONG_CREDENTIALS = "wrong username or password"

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(MAX_USERNAME_LENGTH), nullable=False),
    sa.Column("username_key", sa.String(MAX_USERNAME_LENGTH), nullable=False, unique=True),
    sa.Column("email", sa.Text),
    sa.Column("email_verified", sa.Boolean, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("groups", sa.Text, nullable=False),  # a JSON list of strings
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class UserAdminError(ValueError):
    """An administrator's change to the directory cannot be made; the message says why."""


class UserExists(UserAdminError):
    pass


class UnknownUser(UserAdminError, LookupError):
    pass


def username_key(username: str) -> str:
    """The form usernames are compared in."""
    return unicodedata.normalize("NFKC", username).casefold()


class BuiltinDirectory:
    """Directory over the `users` table. Thread-safe: every call uses its own connection."""

    def __init__(
        self, engine: sa.Engine, hasher: PasswordHasher, clock: Clock | None = None
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._clock = clock or SystemClock()

    # -- Directory ---------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> User:
        """Verify the password even for disabled accounts, and a dummy hash for unknown
        users, so timing does not reveal which usernames exist or are disabled."""
        if not (_plausible(username) and _plausible(password)):
            raise InvalidCredentials(WRONG_CREDENTIALS)
        row = self._row(users.c.username_key == username_key(username))
        if row is None:
            self._hasher.dummy_verify(password)
            raise InvalidCredentials(WRONG_CREDENTIALS)
        if not self._hasher.verify(row.password_hash, password):
            raise InvalidCredentials(WRONG_CREDENTIALS)
        if row.disabled:
            raise AccountDisabled(f"user {row.id} is disabled")
        if self._hasher.needs_rehash(row.password_hash):
            self._upgrade_hash(row, password)
        return _user(row)

    def get(self, user_id: str) -> User | None:
        if not _plausible(user_id):
            return None
        row = self._row(users.c.id == user_id)
        return None if row is None else _user(row)

    def find(self, username: str) -> User | None:
        if not _plausible(username):
            return None
        row = self._row(users.c.username_key == username_key(username))
        return None if row is None else _user(row)

    def ping(self) -> None:
        with self._transaction("cannot reach the user database") as connection:
            connection.execute(sa.text("SELECT 1"))

    # -- administration ----------------------------------------------------------------

    def add_user(
        self,
        username: str,
        password: str,
        *,
        email: str | None = None,
        name: str | None = None,
        groups: Iterable[str] = (),
        phone: str | None = None,
    ) -> User:
        _check_username(username)
        _check_password(password)
        user = User(
            id=str(uuid.uuid4()),
            username=username,
            email=email,
            name=name,
            phone=phone,
            groups=_check_groups(groups),
        )
        password_hash = self._hasher.hash(password)
        now = self._now()
        try:
            with self._transaction("cannot add the user") as connection:
                connection.execute(
                    users.insert().values(
                        **_columns(user),
                        username_key=username_key(username),
                        password_hash=password_hash,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise UserExists(f"a user named {username!r} already exists") from None
        log.info("user %s (%s) added", user.id, username)
        return user

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        self._update(username, password_hash=self._hasher.hash(password))

    def disable(self, username: str) -> None:
        self._update(username, disabled=True)

    def enable(self, username: str) -> None:
        self._update(username, disabled=False)

    def list_users(self) -> list[User]:
        with self._transaction("cannot list the users") as connection:
            rows = connection.execute(sa.select(users).order_by(users.c.username_key))
            return [_user(row) for row in rows]

    # -- helpers -----------------------------------------------------------------------

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sa.Connection]:
        with unavailable_on_failure(what), self._engine.begin() as connection:
            yield connection

    def _row(self, condition: sa.ColumnElement[bool]) -> sa.Row | None:
        with self._transaction("cannot read the user database") as connection:
            return connection.execute(sa.select(users).where(condition)).one_or_none()

    def _update(self, username: str, **values: object) -> None:
        statement = (
            users.update()
            .where(users.c.username_key == username_key(username))
            .values(**values, updated_at=self._now())
        )
        with self._transaction("cannot change the user") as connection:
            changed = connection.execute(statement).rowcount
        if not changed:
            raise UnknownUser(f"no user named {username!r}")
        log.info("user %s changed: %s", username, ", ".join(sorted(values)))

    def _upgrade_hash(self, row: sa.Row, password: str) -> None:
        """Re-hash with today's parameters. Only replaces the hash that was verified, so a
        password changed meanwhile by an administrator is not overwritten. The password was
        right: failing to store the new hash must not fail the login, it is retried next time.
        """
        statement = (
            users.update()
            .where(users.c.id == row.id, users.c.password_hash == row.password_hash)
            .values(password_hash=self._hasher.hash(password), updated_at=self._now())
        )
        try:
            with self._transaction("cannot store the upgraded password hash") as connection:
                connection.execute(statement)
        except ServiceUnavailable as exc:
            log.warning("password hash of user %s not upgraded: %s", row.id, exc.detail)
            return
        log.info("password hash of user %s upgraded to current parameters", row.id)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), tz=UTC)


def _user(row: sa.Row) -> User:
    return User(
        id=row.id,
        username=row.username,
        email=row.email,
        email_verified=row.email_verified,
        name=row.name,
        phone=row.phone,
        groups=tuple(json.loads(row.groups)),
        disabled=row.disabled,
    )


def _columns(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "email_verified": user.email_verified,
        "name": user.name,
        "phone": user.phone,
        "groups": json.dumps(list(user.groups)),
        "disabled": user.disabled,
    }


def _plausible(text: str) -> bool:
    """Could this be a stored username, id or password? Junk (NUL, lone surrogates, absurd
    length) is turned away before it reaches the database driver or argon2."""
    return len(text) <= MAX_INPUT_LENGTH and "\x00" not in text and _encodable(text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_username(username: str) -> None:
    if not username:
        raise UserAdminError("the username must not be empty")
    if max(len(username), len(username_key(username))) > MAX_USERNAME_LENGTH:
        raise UserAdminError(f"the username must be at most {MAX_USERNAME_LENGTH} characters")
    if not _encodable(username) or any(unicodedata.category(c) == "Cc" for c in username):
        raise UserAdminError("the username must not contain control characters")
    if username != username.strip():
        raise UserAdminError("the username must not begin or end with spaces")


def _check_password(password: str) -> None:
    if not password:
        raise UserAdminError("the password must not be empty")
    if not _plausible(password):
        raise UserAdminError(
            f"the password must be at most {MAX_INPUT_LENGTH} characters"
            " of valid text without NUL characters"
        )


def _check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    checked = tuple(groups)
    if not all(isinstance(group, str) and group for group in checked):
        raise UserAdminError("groups must be non-empty strings")
    return checked
