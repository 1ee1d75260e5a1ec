"""Registrations in the durable SQL database (SQLite for one instance, PostgreSQL for
several), with the secret and the phone number encrypted at rest."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from provider.enrollment import Enrollment
from provider.storage.encryption import Encryptor
from provider.storage.sql import metadata, unavailable_on_failure

log = logging.getLogger(__name__)

enrollments = sa.Table(
    "enrollments",
    metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("channel", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("secret_ciphertext", sa.Text),
    sa.Column("phone_ciphertext", sa.Text),
    # Epoch seconds as doubles, like the Clock: a registration reads back exactly as saved.
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_used_at", sa.Double),
)

_KEY = ("user_id", "channel")
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def secret_context(user_id: str, channel: str) -> str:
    return f"enrollment:{user_id}:{channel}:secret"


def phone_context(user_id: str, channel: str) -> str:
    return f"enrollment:{user_id}:{channel}:phone"


class SqlEnrollmentStore:
    """EnrollmentStore over the `enrollments` table. Thread-safe: every call uses its own
    connection. ``clock`` is accepted for uniform wiring; every time is the caller's."""

    def __init__(self, engine: sa.Engine, encryptor: Encryptor) -> None:
        self._engine = engine
        self._encryptor = encryptor
        self._insert = _INSERTS[engine.dialect.name]

    def list(self, user_id: str) -> list[Enrollment]:
        statement = (
            sa.select(enrollments)
            .where(enrollments.c.user_id == user_id)
            .order_by(
                enrollments.c.last_used_at.desc().nulls_last(),
                enrollments.c.created_at.desc(),
                enrollments.c.channel,
            )
        )
        with self._transaction("cannot read the enrolments") as connection:
            rows = connection.execute(statement).all()
        return [self._enrollment(row) for row in rows]

    def get(self, user_id: str, channel: str) -> Enrollment | None:
        statement = sa.select(enrollments).where(_is(user_id, channel))
        with self._transaction("cannot read the enrolments") as connection:
            row = connection.execute(statement).one_or_none()
        return None if row is None else self._enrollment(row)

    def save(self, enrollment: Enrollment) -> None:
        """One INSERT ... ON CONFLICT DO UPDATE: atomic without a read first, so two
        instances saving the same registration at once cannot collide on the key."""
        values = self._columns(enrollment)
        insert = self._insert(enrollments).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={name: insert.excluded[name] for name in values if name not in _KEY},
        )
        with self._transaction("cannot save the enrolment") as connection:
            connection.execute(statement)
        log.info("enrolment of user %s for channel %s saved", enrollment.user_id, enrollment.channel)

    def touch(self, user_id: str, channel: str, when: float) -> None:
        """Only moves forward, so a slow request finishing late cannot hide a newer use."""
        last = enrollments.c.last_used_at
        statement = (
            enrollments.update()
            .where(_is(user_id, channel), sa.or_(last.is_(None), last < when))
            .values(last_used_at=when)
        )
        with self._transaction("cannot record the use of the enrolment") as connection:
            connection.execute(statement)

    def delete(self, user_id: str, channel: str | None = None) -> int:
        condition = enrollments.c.user_id == user_id
        if channel is not None:
            condition = _is(user_id, channel)
        with self._transaction("cannot delete the enrolment") as connection:
            removed = connection.execute(enrollments.delete().where(condition)).rowcount
        log.info("%d enrolment(s) of user %s deleted (channel: %s)", removed, user_id, channel or "all")
        return removed

    def ping(self) -> None:
        with self._transaction("cannot reach the enrolment database") as connection:
            connection.execute(sa.text("SELECT 1"))

    def reencrypt_all(self) -> int:
        """Re-seal every row not under the current key; how many rows were rewritten.

        Each row is replaced only if it still holds what was read, so a registration saved
        meanwhile is never overwritten with older data. A row under a key that is not
        configured raises DecryptionError: configure the old secret, then run again.
        """
        columns = (enrollments.c[name] for name in (*_KEY, "secret_ciphertext", "phone_ciphertext"))
        with self._transaction("cannot read the enrolments") as connection:
            rows = connection.execute(sa.select(*columns)).all()
        rewritten = sum(self._reencrypt(row) for row in rows if self._is_stale(row))
        log.info("%d enrolment(s) re-encrypted under key %s", rewritten, self._encryptor.current_kid)
        return rewritten

    # -- helpers -----------------------------------------------------------------------

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sa.Connection]:
        with unavailable_on_failure(what), self._engine.begin() as connection:
            yield connection

    def _columns(self, enrollment: Enrollment) -> dict[str, object]:
        user_id, channel = enrollment.user_id, enrollment.channel
        phone = None if enrollment.phone is None else enrollment.phone.encode("utf-8")
        return {
            "user_id": user_id,
            "channel": channel,
            "kind": enrollment.kind,
            "secret_ciphertext": self._seal(enrollment.secret, secret_context(user_id, channel)),
            "phone_ciphertext": self._seal(phone, phone_context(user_id, channel)),
            "created_at": enrollment.created_at,
            "last_used_at": enrollment.last_used_at,
        }

    def _enrollment(self, row: sa.Row) -> Enrollment:
        phone = self._open(row.phone_ciphertext, phone_context(row.user_id, row.channel))
        return Enrollment(
            user_id=row.user_id,
            channel=row.channel,
            kind=row.kind,
            secret=self._open(row.secret_ciphertext, secret_context(row.user_id, row.channel)),
            phone=None if phone is None else phone.decode("utf-8"),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
        )

    def _seal(self, plaintext: bytes | None, context: str) -> str | None:
        return None if plaintext is None else self._encryptor.encrypt(plaintext, context)

    def _open(self, token: str | None, context: str) -> bytes | None:
        return None if token is None else self._encryptor.decrypt(token, context)

    def _is_stale(self, row: sa.Row) -> bool:
        sealed = (row.secret_ciphertext, row.phone_ciphertext)
        return any(token is not None and self._encryptor.needs_reencrypt(token) for token in sealed)

    def _reencrypt(self, row: sa.Row) -> int:
        secret = secret_context(row.user_id, row.channel)
        phone = phone_context(row.user_id, row.channel)
        statement = (
            enrollments.update()
            .where(
                _is(row.user_id, row.channel),
                enrollments.c.secret_ciphertext.is_not_distinct_from(row.secret_ciphertext),
                enrollments.c.phone_ciphertext.is_not_distinct_from(row.phone_ciphertext),
            )
            .values(
                secret_ciphertext=self._seal(self._open(row.secret_ciphertext, secret), secret),
                phone_ciphertext=self._seal(self._open(row.phone_ciphertext, phone), phone),
            )
        )
        with self._transaction("cannot re-encrypt the enrolment") as connection:
            return connection.execute(statement).rowcount


def _is(user_id: str, channel: str) -> sa.ColumnElement[bool]:
    return sa.and_(enrollments.c.user_id == user_id, enrollments.c.channel == channel)
