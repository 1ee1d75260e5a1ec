"""The EnrollmentStore contract on SQLite, on a real PostgreSQL and on Keycloak user attributes
(the stand-in Keycloak of tests/fixtures/keycloak.py), and what the SQL store keeps encrypted
at rest (Keycloak's: test_keycloak.py)."""

from __future__ import annotations

import base64
import dataclasses
import pathlib
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from provider.enrollment import Enrollment, EnrollmentStore
from provider.enrollment.keycloak import KeycloakEnrollmentStore
from provider.enrollment.sql import SqlEnrollmentStore, enrollments
from provider.errors import ServiceUnavailable
from provider.storage.encryption import DecryptionError, Encryptor
from provider.storage.sql import metadata, open_database

SECRET = "operator secret for the enrolment tests, 32+ chars"
NEW_SECRET = "the rotated operator secret, also 32+ characters"
TOTP_KEY = bytes(range(0x80, 0x94))  # 20 bytes, as a TOTP key is
PHONE = "+4915112345678"
T0 = 1_700_000_000.0


def enrollment(channel: str = "totp", user_id: str = "alice", **changes: object) -> Enrollment:
    kind = "sms" if channel == "sms" else "totp"
    base = Enrollment(
        user_id=user_id,
        channel=channel,
        kind=kind,
        secret=TOTP_KEY if kind == "totp" else None,
        phone=PHONE if kind == "sms" else None,
        created_at=T0,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def encryptor() -> Encryptor:
    return Encryptor.from_secrets(SECRET)


@pytest.fixture
def sql_store(engine: sa.Engine, encryptor: Encryptor) -> SqlEnrollmentStore:
    return SqlEnrollmentStore(engine, encryptor)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "keycloak"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path, encryptor: Encryptor) -> Iterator[EnrollmentStore]:
    if request.param == "keycloak":
        keycloak = request.getfixturevalue("keycloak")
        for name in ("alice", "bob", "mallory"):
            keycloak.add_user(name, "password", id=name)  # Keycloak ids are opaque strings
        yield KeycloakEnrollmentStore(keycloak.api(), encryptor)
        return
    url = f"sqlite:///{tmp_path / 'twostep.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres_url")
    engine = open_database(url, tmp_path)
    yield SqlEnrollmentStore(engine, encryptor)
    metadata.drop_all(engine)  # the PostgreSQL database lives for the whole session
    engine.dispose()


# -- the EnrollmentStore contract ----------------------------------------------------------


@pytest.mark.parametrize("channel", ["totp", "sms"])
def test_saved_enrollment_reads_back(store: EnrollmentStore, channel: str) -> None:
    saved = enrollment(channel, created_at=T0 + 0.123456, last_used_at=T0 + 60.5)
    store.save(saved)
    assert store.get("alice", channel) == saved
    assert store.list("alice") == [saved]


def test_enrollment_without_secret_or_phone(store: EnrollmentStore) -> None:
    bare = Enrollment("alice", "rsa", "rsa", secret=None, phone=None, created_at=T0)
    store.save(bare)
    assert store.get("alice", "rsa") == bare


def test_unknown_user_or_channel(store: EnrollmentStore) -> None:
    store.save(enrollment("totp"))
    assert store.list("bob") == []
    assert store.get("bob", "totp") is None
    assert store.get("alice", "sms") is None


def test_list_most_recently_used_first_then_newest(store: EnrollmentStore) -> None:
    for channel, created, used in [
        ("a", 100, 500),
        ("b", 200, 900),
        ("c", 300, None),
        ("d", 400, None),
        ("e", 50, 500),
    ]:
        store.save(enrollment(channel, created_at=T0 + created, last_used_at=used and T0 + used))
    store.save(enrollment("z", user_id="bob", last_used_at=T0 + 999))
    assert [e.channel for e in store.list("alice")] == ["b", "a", "e", "d", "c"]


def test_save_replaces_the_whole_registration(store: EnrollmentStore) -> None:
    store.save(enrollment("second", last_used_at=T0 + 10))
    replacement = Enrollment(
        "alice", "second", "sms", secret=None, phone="+15550100", created_at=T0 + 99
    )
    store.save(replacement)
    assert store.get("alice", "second") == replacement
    assert store.list("alice") == [replacement]


def test_concurrent_saves_leave_one_whole_registration(store: EnrollmentStore) -> None:
    candidates = [enrollment(secret=bytes([n]) * 20, created_at=T0 + n) for n in range(8)]
    errors: list[BaseException] = []

    def save(candidate: Enrollment) -> None:
        try:
            for _ in range(3):
                store.save(candidate)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(c,)) for c in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.list("alice") in ([c] for c in candidates)


def test_touch_records_last_use_and_reorders(store: EnrollmentStore) -> None:
    store.save(enrollment("totp", created_at=T0))
    store.save(enrollment("sms", created_at=T0 + 1))
    assert [e.channel for e in store.list("alice")] == ["sms", "totp"]
    store.touch("alice", "totp", T0 + 100)
    assert store.get("alice", "totp") == enrollment("totp", last_used_at=T0 + 100)
    assert [e.channel for e in store.list("alice")] == ["totp", "sms"]


def test_touch_never_moves_backwards(store: EnrollmentStore) -> None:
    store.save(enrollment(last_used_at=T0 + 100))
    store.touch("alice", "totp", T0 + 50)
    assert store.get("alice", "totp").last_used_at == T0 + 100


def test_touch_of_an_unknown_registration_does_nothing(store: EnrollmentStore) -> None:
    store.touch("alice", "totp", T0)
    assert store.list("alice") == []


def test_delete_one_channel(store: EnrollmentStore) -> None:
    store.save(enrollment("totp"))
    store.save(enrollment("sms"))
    assert store.delete("alice", "totp") == 1
    assert store.delete("alice", "totp") == 0
    assert [e.channel for e in store.list("alice")] == ["sms"]


def test_delete_all_of_one_user(store: EnrollmentStore) -> None:
    store.save(enrollment("totp"))
    store.save(enrollment("sms"))
    store.save(enrollment("totp", user_id="bob"))
    assert store.delete("alice") == 2
    assert store.list("alice") == []
    assert store.delete("alice") == 0
    assert [e.user_id for e in store.list("bob")] == ["bob"]


def test_ping(store: EnrollmentStore) -> None:
    store.ping()


def test_unreachable_database_is_service_unavailable(encryptor: Encryptor) -> None:
    dead = sa.create_engine("postgresql+psycopg://twostep:pw@127.0.0.1:1/twostep")
    store = SqlEnrollmentStore(dead, encryptor)
    for call in (store.ping, lambda: store.list("alice"), lambda: store.save(enrollment())):
        with pytest.raises(ServiceUnavailable):
            call()
    dead.dispose()


# -- encryption at rest --------------------------------------------------------------------


def test_sqlite_file_holds_neither_secret_nor_phone(tmp_path: pathlib.Path, encryptor: Encryptor) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'twostep.db'}", tmp_path)
    store = SqlEnrollmentStore(engine, encryptor)
    store.save(enrollment("totp"))
    store.save(enrollment("sms"))
    forbidden = [TOTP_KEY, base64.b32encode(TOTP_KEY), PHONE.encode(), PHONE[1:].encode()]

    def assert_files_clean() -> None:
        for path in tmp_path.glob("twostep.db*"):  # the database, its -wal and -shm
            content = path.read_bytes()
            assert not [value for value in forbidden if value in content], path.name

    assert_files_clean()
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert_files_clean()
    assert (tmp_path / "twostep.db").read_bytes().count(b"v1.") >= 2  # the rows are there
    engine.dispose()


def test_row_copied_to_another_user_does_not_decrypt(
    sql_store: SqlEnrollmentStore, engine: sa.Engine
) -> None:
    sql_store.save(enrollment("totp"))
    sql_store.save(enrollment("sms"))
    with engine.begin() as connection:
        for row in connection.execute(sa.select(enrollments)).mappings().all():
            connection.execute(enrollments.insert().values({**row, "user_id": "mallory"}))
    for channel in ("totp", "sms"):
        with pytest.raises(DecryptionError):
            sql_store.get("mallory", channel)
    with pytest.raises(DecryptionError):
        sql_store.list("mallory")


def test_ciphertext_swapped_between_channels_does_not_decrypt(
    sql_store: SqlEnrollmentStore, engine: sa.Engine
) -> None:
    sql_store.save(enrollment("totp"))
    sql_store.save(enrollment("backup"))
    with engine.begin() as connection:
        sealed = connection.execute(
            sa.select(enrollments.c.secret_ciphertext).where(enrollments.c.channel == "totp")
        ).scalar_one()
        connection.execute(
            enrollments.update().where(enrollments.c.channel == "backup").values(secret_ciphertext=sealed)
        )
    with pytest.raises(DecryptionError):
        sql_store.get("alice", "backup")


def test_reencrypt_all_moves_rows_to_the_current_key(
    sql_store: SqlEnrollmentStore, engine: sa.Engine
) -> None:
    saved = [
        enrollment("totp"),
        enrollment("sms"),
        Enrollment("alice", "rsa", "rsa", secret=None, phone=None, created_at=T0),
    ]
    for each in saved:
        sql_store.save(each)
    rotated = Encryptor.from_secrets(NEW_SECRET, [SECRET])
    assert SqlEnrollmentStore(engine, rotated).reencrypt_all() == 2
    assert SqlEnrollmentStore(engine, rotated).reencrypt_all() == 0

    with engine.connect() as connection:
        columns = [enrollments.c.secret_ciphertext, enrollments.c.phone_ciphertext]
        tokens = [t for row in connection.execute(sa.select(*columns)) for t in row if t is not None]
    assert len(tokens) == 2
    assert all(not rotated.needs_reencrypt(token) for token in tokens)
    only_new = SqlEnrollmentStore(engine, Encryptor.from_secrets(NEW_SECRET))
    assert sorted(only_new.list("alice"), key=lambda e: e.channel) == sorted(saved, key=lambda e: e.channel)


def test_reencrypt_all_refuses_rows_under_an_unknown_key(
    sql_store: SqlEnrollmentStore, engine: sa.Engine
) -> None:
    sql_store.save(enrollment("totp"))
    forgotten_old = SqlEnrollmentStore(engine, Encryptor.from_secrets(NEW_SECRET))
    with pytest.raises(DecryptionError, match="not configured"):
        forgotten_old.reencrypt_all()
    assert sql_store.get("alice", "totp") == enrollment("totp")
