"""The Directory contract, on the built-in directory (SQLite and a real PostgreSQL) and on the
Keycloak directory (the stand-in Keycloak of tests/fixtures/keycloak.py); the built-in
directory's administration; and opening the durable database."""

from __future__ import annotations

import pathlib
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provider.directory import Directory, User
from provider.directory.builtin import (
    BuiltinDirectory,
    UnknownUser,
    UserAdminError,
    UserExists,
    users,
)
from provider.directory.keycloak import KeycloakDirectory
from provider.directory.passwords import HashParameters, PasswordHasher
from provider.errors import (
    AccountDisabled,
    ConfigurationError,
    InvalidCredentials,
    ServiceUnavailable,
)
from provider.storage.sql import metadata, open_database

# Cheap enough that a test costs milliseconds; the defaults are checked once, below.
CHEAP = HashParameters(memory_cost=1024, time_cost=1, parallelism=1)
PASSWORD = "correct horse battery staple"

JUNK = [
    "",
    "\x00",
    "alice\x00",
    "x" * 100_000,
    "\ud800",
    "Ωmega ünïcode 🙂",
    "' OR 1=1 --",
    "%",
    "alice\n",
]


@dataclass
class Realm:
    """A directory under test, and an administrator's hands on its users."""

    directory: Directory
    add_user: Callable[..., User]  # (username, password, **profile) -> the User the directory shows
    disable: Callable[[str], None]
    enable: Callable[[str], None]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "keycloak"])
def realm(request: pytest.FixtureRequest, tmp_path: pathlib.Path, hasher: PasswordHasher) -> Iterator[Realm]:
    if request.param == "keycloak":
        keycloak = request.getfixturevalue("keycloak")

        def enabled(value: bool) -> Callable[[str], None]:
            return lambda username: setattr(keycloak.user(username), "enabled", value)

        yield Realm(KeycloakDirectory(keycloak.api()),
                    lambda *args, **profile: keycloak.add_user(*args, **profile).as_twostep(),
                    enabled(False), enabled(True))
        return
    url = f"sqlite:///{tmp_path / 'twostep.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres_url")
    engine = open_database(url, tmp_path)
    builtin = BuiltinDirectory(engine, hasher)
    yield Realm(builtin, builtin.add_user, builtin.disable, builtin.enable)
    metadata.drop_all(engine)  # the PostgreSQL database lives for the whole session
    engine.dispose()


@pytest.fixture
def directory(realm: Realm) -> Directory:
    return realm.directory


@pytest.fixture
def alice(realm: Realm) -> User:
    return realm.add_user(
        "Alice",
        PASSWORD,
        email="alice@example.org",
        name="Alice Liddell",
        groups=("staff", "wonderland"),
        phone="+15550100",
    )


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(CHEAP)


@pytest.fixture
def builtin(engine: sa.Engine, hasher: PasswordHasher) -> BuiltinDirectory:
    return BuiltinDirectory(engine, hasher)


@pytest.fixture
def builtin_alice(builtin: BuiltinDirectory) -> User:
    return builtin.add_user("Alice", PASSWORD, email="alice@example.org", name="Alice Liddell",
                            groups=("staff", "wonderland"), phone="+15550100")


# -- the Directory contract ----------------------------------------------------------------


def test_added_user_is_found_got_and_authenticated(directory: Directory, alice: User) -> None:
    assert uuid.UUID(alice.id)
    assert alice.username in ("Alice", "alice")  # as typed (built-in) or lower-cased (Keycloak)
    assert alice == User(
        id=alice.id,
        username=alice.username,
        email="alice@example.org",
        name="Alice Liddell",
        phone="+15550100",
        groups=("staff", "wonderland"),
    )
    assert directory.find("Alice") == alice
    assert directory.get(alice.id) == alice
    assert directory.authenticate("Alice", PASSWORD) == alice


@pytest.mark.parametrize("spelling", ["alice", "ALICE", "aLiCe", "ａｌｉｃｅ"])
def test_usernames_compare_case_insensitively(directory: Directory, alice: User, spelling: str) -> None:
    assert directory.find(spelling) == alice
    assert directory.authenticate(spelling, PASSWORD).username == alice.username


def test_unknown_user_and_wrong_password_fail_alike(directory: Directory, alice: User) -> None:
    with pytest.raises(InvalidCredentials) as wrong_password:
        directory.authenticate("alice", "wrong")
    with pytest.raises(InvalidCredentials) as unknown_user:
        directory.authenticate("bob", PASSWORD)
    assert type(wrong_password.value) is type(unknown_user.value)
    assert str(wrong_password.value) == str(unknown_user.value)
    assert wrong_password.value.user_message == unknown_user.value.user_message


def test_disabled_account(realm: Realm, directory: Directory, alice: User) -> None:
    realm.disable("alice")
    assert directory.find("alice") == User(**{**alice.__dict__, "disabled": True})
    with pytest.raises(AccountDisabled):
        directory.authenticate("alice", PASSWORD)
    realm.enable("ALICE")
    assert directory.authenticate("alice", PASSWORD) == alice


def test_missing_users_are_none(directory: Directory, alice: User) -> None:
    assert directory.find("bob") is None
    assert directory.get(str(uuid.uuid4())) is None
    assert directory.get("not-a-uuid\x00") is None
    assert directory.find("alice\x00") is None


@pytest.mark.parametrize("password", JUNK)
def test_junk_password_is_only_invalid_credentials(directory: Directory, alice: User, password: str) -> None:
    with pytest.raises(InvalidCredentials):
        directory.authenticate("alice", password)


@pytest.mark.parametrize("username", JUNK)
def test_junk_username_is_only_invalid_credentials(directory: Directory, alice: User, username: str) -> None:
    with pytest.raises(InvalidCredentials):
        directory.authenticate(username, PASSWORD)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(username=st.text(max_size=40), password=st.text(max_size=40))
def test_any_text_is_only_invalid_credentials(
    directory: Directory, alice: User, username: str, password: str
) -> None:
    with pytest.raises(InvalidCredentials):
        directory.authenticate(username, password)


def test_ping(directory: Directory) -> None:
    directory.ping()


# -- the built-in directory only -------------------------------------------------------------


def test_disabled_builtin_account_checks_the_password_first(builtin: BuiltinDirectory, builtin_alice: User) -> None:
    """No probing for disabled accounts: a wrong password is just wrong. (Keycloak answers
    "Account disabled" before it checks the password: see test_keycloak.py.)"""
    builtin.disable("alice")
    with pytest.raises(InvalidCredentials):
        builtin.authenticate("alice", "wrong")
    with pytest.raises(AccountDisabled):
        builtin.authenticate("alice", PASSWORD)


def test_unicode_usernames_compare_by_casefold(builtin: BuiltinDirectory) -> None:
    user = builtin.add_user("Straße", PASSWORD)
    assert builtin.find("STRASSE") == user
    with pytest.raises(UserExists):
        builtin.add_user("strasse", PASSWORD)


def test_unknown_user_costs_a_dummy_verification(
    builtin: BuiltinDirectory,
    hasher: PasswordHasher,
    builtin_alice: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dummy_calls: list[str] = []
    real_dummy_verify = hasher.dummy_verify

    def spy(password: str) -> None:
        dummy_calls.append(password)
        real_dummy_verify(password)

    monkeypatch.setattr(hasher, "dummy_verify", spy)
    with pytest.raises(InvalidCredentials):
        builtin.authenticate("bob", "guess")
    assert dummy_calls == ["guess"]
    with pytest.raises(InvalidCredentials):
        builtin.authenticate("alice", "guess")
    assert dummy_calls == ["guess"], "a known user is verified against the real hash"


def test_unreachable_database_is_service_unavailable(hasher: PasswordHasher) -> None:
    dead = sa.create_engine("postgresql+psycopg://twostep:pw@127.0.0.1:1/twostep")
    directory = BuiltinDirectory(dead, hasher)
    with pytest.raises(ServiceUnavailable):
        directory.ping()
    with pytest.raises(ServiceUnavailable):
        directory.authenticate("alice", PASSWORD)


# -- administration of the built-in directory -----------------------------------------------


@pytest.mark.parametrize("spelling", ["Alice", "alice", "ALICE"])
def test_duplicate_username_is_refused(
    builtin: BuiltinDirectory, builtin_alice: User, spelling: str
) -> None:
    with pytest.raises(UserExists, match="already exists"):
        builtin.add_user(spelling, "another password")
    assert builtin.authenticate("alice", PASSWORD) == builtin_alice


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("", PASSWORD, "empty"),
        ("bob", "", "empty"),
        ("x" * 256, PASSWORD, "at most 255"),
        ("bo\x00b", PASSWORD, "control"),
        ("bo\nb", PASSWORD, "control"),
        ("bo\ud800b", PASSWORD, "control"),
        (" bob", PASSWORD, "spaces"),
        ("bob", "pass\x00word", "NUL"),
        ("bob", "x" * 1025, "at most 1024"),
    ],
)
def test_bad_new_users_are_refused(
    builtin: BuiltinDirectory, username: str, password: str, reason: str
) -> None:
    with pytest.raises(UserAdminError, match=reason):
        builtin.add_user(username, password)
    assert builtin.list_users() == []


def test_set_password(builtin: BuiltinDirectory, builtin_alice: User) -> None:
    builtin.set_password("ALICE", "a new password")
    with pytest.raises(InvalidCredentials):
        builtin.authenticate("alice", PASSWORD)
    assert builtin.authenticate("alice", "a new password") == builtin_alice


@pytest.mark.parametrize("change", ["set_password", "disable", "enable"])
def test_changing_an_unknown_user_is_refused(builtin: BuiltinDirectory, change: str) -> None:
    arguments = ("bob", "a password") if change == "set_password" else ("bob",)
    with pytest.raises(UnknownUser, match="bob"):
        getattr(builtin, change)(*arguments)


def test_list_users_sorted_by_username(builtin: BuiltinDirectory) -> None:
    assert builtin.list_users() == []
    for username in ("carol", "Bob", "alice"):
        builtin.add_user(username, PASSWORD)
    assert [user.username for user in builtin.list_users()] == ["alice", "Bob", "carol"]


def test_profile_and_groups_roundtrip(builtin: BuiltinDirectory) -> None:
    added = builtin.add_user(
        "zoë", PASSWORD, name="Zoë Ünïcode", groups=("zeta", "alpha", "ops/on-call")
    )
    plain = builtin.add_user("yann", PASSWORD)
    assert builtin.get(added.id) == added
    assert builtin.find("zoë").groups == ("zeta", "alpha", "ops/on-call")
    assert builtin.get(plain.id) == User(id=plain.id, username="yann")


def test_owasp_defaults_and_old_hashes_upgraded_at_login(engine: sa.Engine) -> None:
    default = PasswordHasher()
    assert default.parameters == HashParameters(memory_cost=19456, time_cost=2, parallelism=1)
    BuiltinDirectory(engine, PasswordHasher(CHEAP)).add_user("alice", PASSWORD)
    assert "m=1024,t=1,p=1" in _stored_hash(engine, "alice")

    directory = BuiltinDirectory(engine, default)
    with pytest.raises(InvalidCredentials):
        directory.authenticate("alice", "wrong")
    assert "m=1024,t=1,p=1" in _stored_hash(engine, "alice"), "only a right password upgrades"
    directory.authenticate("alice", PASSWORD)
    assert "m=19456,t=2,p=1" in _stored_hash(engine, "alice")
    assert directory.authenticate("alice", PASSWORD).username == "alice"


def _stored_hash(engine: sa.Engine, username: str) -> str:
    with engine.connect() as connection:
        query = sa.select(users.c.password_hash).where(users.c.username == username)
        return connection.execute(query).scalar_one()


# -- opening the database ------------------------------------------------------------------


def test_relative_sqlite_path_is_relative_to_the_settings_folder(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings_folder = tmp_path / "config"
    engine = open_database("sqlite:///data/twostep.db", settings_folder)
    try:
        assert (settings_folder / "data" / "twostep.db").is_file()
        assert sa.inspect(engine).has_table("users")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        engine.dispose()


def test_absolute_sqlite_path(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "elsewhere" / "twostep.db"
    engine = open_database(f"sqlite:///{path}", tmp_path / "config")
    engine.dispose()
    assert path.is_file()


def test_memory_database_is_shared_between_threads(
    tmp_path: pathlib.Path, hasher: PasswordHasher
) -> None:
    directory = BuiltinDirectory(open_database("sqlite://", tmp_path), hasher)
    worker = threading.Thread(target=directory.add_user, args=("alice", PASSWORD))
    worker.start()
    worker.join()
    assert directory.authenticate("alice", PASSWORD).username == "alice"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/twostep",
        "redis://localhost",
        "postgresql+asyncpg://h/db",
        "twostep.db",
    ],
)
def test_unknown_scheme_is_a_configuration_error(tmp_path: pathlib.Path, url: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite://, postgresql://"):
        open_database(url, tmp_path)


def test_unreachable_postgres_is_unavailable_without_leaking_the_password(
    tmp_path: pathlib.Path,
) -> None:
    secret = "s3cret-pa55word"
    with pytest.raises(ServiceUnavailable) as raised:
        open_database(f"postgresql://twostep:{secret}@127.0.0.1:1/twostep", tmp_path)
    printed = "".join(traceback.format_exception(raised.value))
    assert "127.0.0.1:1" in raised.value.detail
    assert secret not in printed
    assert secret not in raised.value.user_message
