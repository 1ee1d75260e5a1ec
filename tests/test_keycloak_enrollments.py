"""Registrations kept as Keycloak user attributes, beyond the EnrollmentStore contract (which
test_enrollment_store.py runs on them): the stored format and what it keeps secret, Keycloak
24+'s full-representation PUT and user profile, and the start-up check that refuses a realm
which would drop twostep's attributes. Over real HTTP against the stand-in Keycloak."""
from __future__ import annotations

import base64
import json

import pytest

from provider.enrollment import Enrollment
from provider.enrollment.keycloak import KeycloakEnrollmentStore, user_profile_problems
from provider.errors import ConfigurationError, ServiceUnavailable, TwostepError
from provider.storage.encryption import DecryptionError, Encryptor
from tests.fixtures.keycloak import StandInKeycloak, default_profile

SECRET = "operator secret for the enrolment tests, 32+ chars"
NEW_SECRET = "the rotated operator secret, also 32+ characters"
TOTP_KEY = bytes(range(0x80, 0x94))
PHONE = "+4915112345678"
T0 = 1_700_000_000.0


@pytest.fixture
def store(keycloak: StandInKeycloak) -> KeycloakEnrollmentStore:
    return KeycloakEnrollmentStore(keycloak.api(), Encryptor.from_secrets(SECRET))


@pytest.fixture
def alice(keycloak: StandInKeycloak):
    return keycloak.add_user("alice", "pw", email="alice@example.org", name="Alice Liddell", phone="+15550100",
                             required_actions=["CONFIGURE_TOTP"])


def totp(user_id: str, **changes) -> Enrollment:
    return Enrollment(**{"user_id": user_id, "channel": "totp", "kind": "totp", "secret": TOTP_KEY, "phone": None,
                         "created_at": T0, **changes})


def sms(user_id: str) -> Enrollment:
    return Enrollment(user_id, "sms", "sms", secret=None, phone=PHONE, created_at=T0 + 1)


# -- what is stored ------------------------------------------------------------------------------


def test_one_attribute_per_channel_with_sealed_secret_and_phone(keycloak, store, alice) -> None:
    store.save(totp(alice.id))
    store.save(sms(alice.id))
    assert sorted(n for n in alice.attributes if n.startswith("twostep.")) == ["twostep.sms", "twostep.totp"]
    record = json.loads(alice.attributes["twostep.totp"][0])
    assert record["v"] == 1 and record["kind"] == "totp" and record["created_at"] == T0
    assert record["secret"].startswith("v1.") and record["phone"] is None
    stored = json.dumps(alice.attributes)
    for plaintext in (base64.b32encode(TOTP_KEY).decode(), base64.b64encode(TOTP_KEY).decode(), TOTP_KEY.hex(),
                      PHONE, PHONE[1:]):
        assert plaintext not in stored
    assert all(len(v[0]) < 512 for k, v in alice.attributes.items() if k.startswith("twostep."))


def test_writes_keep_everything_else_of_the_user(keycloak, store, alice) -> None:
    """Keycloak 24.0.4+ deletes what a PUT omits: twostep sends the whole user profile back."""
    alice.attributes["department"] = ["support"]
    alice.enabled = False  # an administrator's change: not part of the user profile, never sent back
    alice.email_verified = True
    store.save(totp(alice.id))
    store.touch(alice.id, "totp", T0 + 60)
    store.save(sms(alice.id))
    assert store.delete(alice.id, "totp") == 1
    assert (alice.email, alice.first_name, alice.last_name) == ("alice@example.org", "Alice", "Liddell")
    assert alice.attributes["phoneNumber"] == ["+15550100"] and alice.attributes["department"] == ["support"]
    assert (alice.enabled, alice.email_verified, alice.required_actions) == (False, True, ["CONFIGURE_TOTP"])
    assert [e.channel for e in store.list(alice.id)] == ["sms"]


def test_read_only_attributes_are_not_lost(keycloak, store, alice) -> None:
    keycloak.declare("employeeNumber", view=("admin",), edit=())
    alice.attributes["employeeNumber"] = ["E-1"]
    store.save(totp(alice.id))
    assert alice.attributes["employeeNumber"] == ["E-1"]


def test_a_copied_attribute_does_not_decrypt(keycloak, store, alice) -> None:
    mallory = keycloak.add_user("mallory", "pw")
    store.save(totp(alice.id))
    mallory.attributes["twostep.totp"] = alice.attributes["twostep.totp"]
    mallory.attributes["twostep.backup"] = alice.attributes["twostep.totp"]
    with pytest.raises(DecryptionError):
        store.get(mallory.id, "totp")
    alice.attributes["twostep.backup"] = alice.attributes["twostep.totp"]
    with pytest.raises(DecryptionError):
        store.get(alice.id, "backup")


@pytest.mark.parametrize("value", [["not json"], ['{"v":2,"kind":"totp","created_at":1}'], ["{}"], [], ["a", "b"]])
def test_a_foreign_value_is_a_decryption_error(keycloak, store, alice, value) -> None:
    alice.attributes["twostep.totp"] = value
    with pytest.raises(DecryptionError, match="format 1"):
        store.list(alice.id)


def test_touch_reseals_under_the_current_key_and_reencrypt_all_does_the_rest(keycloak, alice) -> None:
    bob = keycloak.add_user("bob", "pw")
    old = KeycloakEnrollmentStore(keycloak.api(), Encryptor.from_secrets(SECRET))
    for user in (alice, bob):
        old.save(totp(user.id))
        old.save(sms(user.id))
    rotated = Encryptor.from_secrets(NEW_SECRET, [SECRET])
    store = KeycloakEnrollmentStore(keycloak.api(), rotated)
    store.touch(alice.id, "totp", T0 + 5)
    assert not rotated.needs_reencrypt(json.loads(alice.attributes["twostep.totp"][0])["secret"])
    assert store.reencrypt_all(page=1) == 3  # alice's sms, bob's totp and sms; one user per page
    assert store.reencrypt_all() == 0
    only_new = KeycloakEnrollmentStore(keycloak.api(), Encryptor.from_secrets(NEW_SECRET))
    assert only_new.get(bob.id, "totp") == totp(bob.id)
    assert only_new.get(alice.id, "sms") == sms(alice.id)


def test_saving_for_a_user_keycloak_does_not_know(store) -> None:
    with pytest.raises(TwostepError, match="has no user ghost"):
        store.save(totp("ghost"))
    assert store.list("ghost") == [] and store.delete("ghost") == 0
    store.touch("ghost", "totp", T0)


def test_keycloak_down_is_service_unavailable(keycloak, store, alice) -> None:
    keycloak.faults["*"] = 503
    for call in (store.ping, lambda: store.list(alice.id), lambda: store.save(totp(alice.id))):
        with pytest.raises(ServiceUnavailable):
            call()


def test_missing_manage_users_role(keycloak, store, alice) -> None:
    keycloak.clients["twostep"].roles = {"view-users", "query-users"}
    with pytest.raises(ConfigurationError, match="manage-users"):
        store.save(totp(alice.id))


def test_a_write_keycloak_drops_is_caught_not_silently_lost(keycloak, store, alice) -> None:
    """The profile changed after start-up: Keycloak answers 204 and keeps nothing."""
    keycloak.set_unmanaged_policy("DISABLED")
    with pytest.raises(ConfigurationError, match=r"dropped the attribute twostep\.totp"):
        store.save(totp(alice.id))


def test_a_length_validator_too_short_is_an_error_not_a_loss(keycloak, store, alice) -> None:
    keycloak.declare("twostep.totp", validations={"length": {"max": 100}})
    with pytest.raises(ConfigurationError, match="error-invalid-length"):
        store.save(totp(alice.id))


# -- the start-up check of the user profile ------------------------------------------------------

CHANNELS = ["totp", "sms"]


def admin_only(name: str, **extra) -> dict:
    return {"name": name, "permissions": {"view": ["admin"], "edit": ["admin"]}, **extra}


@pytest.mark.parametrize(("policy", "declared", "problems"), [
    ("ADMIN_EDIT", [], []),
    (None, [admin_only("twostep.totp"), admin_only("twostep.sms")], []),
    ("ADMIN_VIEW", [admin_only("twostep.totp"), admin_only("twostep.sms", validations={"length": {"max": "2048"}})],
     []),
    (None, [], ["twostep.totp: not declared in the user profile, and unmanaged attributes are 'Disabled'",
                "twostep.sms: not declared in the user profile, and unmanaged attributes are 'Disabled'"]),
    ("ADMIN_VIEW", [admin_only("twostep.totp")], ["twostep.sms: not declared in the user profile, and unmanaged"
                                                  " attributes are 'Admin can view'"]),
    ("ENABLED", [admin_only("twostep.totp")], ["twostep.sms: not declared, and unmanaged attributes are 'Enabled',"
                                               " so users could change or remove their own registrations in the"
                                               " account console"]),
    ("ADMIN_EDIT", [admin_only("twostep.totp"),
                    {"name": "twostep.sms", "permissions": {"view": ["admin", "user"], "edit": ["admin"]}}],
     ["twostep.sms: users can see or change it ('Who can view' and 'Who can edit' must be Admin only)"]),
    ("ADMIN_EDIT", [{"name": "twostep.totp", "permissions": {"view": ["admin"], "edit": []}}],
     ["twostep.totp: administrators may not edit it ('Who can edit' must be Admin)"]),
    ("ADMIN_EDIT", [admin_only("twostep.totp", validations={"length": {"max": 255}})],
     ["twostep.totp: its length validator allows 255 characters; registrations need up to 512"]),
], ids=["admin-edit", "declared", "declared-view-only-policy", "disabled", "admin-view", "enabled", "user-view",
        "admin-cannot-edit", "too-short"])
def test_user_profile_problems(policy, declared, problems) -> None:
    profile = default_profile(policy)
    profile["attributes"] += declared
    assert user_profile_problems(profile, [f"twostep.{c}" for c in CHANNELS]) == problems


def test_check_over_http_names_the_fix(keycloak, store) -> None:
    keycloak.set_unmanaged_policy("DISABLED")
    keycloak.declare("twostep.totp")
    with pytest.raises(ConfigurationError) as raised:
        store.check_user_profile(CHANNELS)
    message = raised.value.detail
    assert message.startswith("Keycloak realm 'acme' at http://127.0.0.1:")
    assert "would silently drop twostep's enrolment attributes, and every user would be asked to enrol again" in message
    assert "  - twostep.sms: not declared in the user profile" in message and "twostep.totp:" not in message
    assert "'Admin can edit'" in message and "Admin only" in message
    keycloak.declare("twostep.sms")
    store.check_user_profile(CHANNELS)


def test_check_needs_the_right_to_read_the_user_profile(keycloak) -> None:
    keycloak.clients["twostep"].roles = set()
    with pytest.raises(ConfigurationError, match="view-users"):
        KeycloakEnrollmentStore(keycloak.api(), None).check_user_profile(CHANNELS)
