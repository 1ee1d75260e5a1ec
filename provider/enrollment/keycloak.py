"""Registrations kept as attributes of the Keycloak user, so a sidecar needs no database.

One single-valued attribute per channel, named ``twostep.<channel>`` (``twostep.totp``,
``twostep.sms``: the channel names of the settings), holding compact JSON::

    {"v":1,"kind":"totp","secret":"v1.<kid>.<sealed>","phone":null,"created_at":1700000000.0,"last_used_at":null}

The secret and the phone number are sealed by the Encryptor for their user and channel, with
the same contexts as the SQL store; kind and times stay readable for administrators.

Keycloak 24+ stores only what its user profile allows and silently drops the rest of a write,
so ``check_user_profile`` refuses to start unless every attribute is declared admin-only or
the realm's unmanaged-attribute policy is ADMIN_EDIT (Server Administration Guide, "Managing
user attributes"); a save is also read back to catch a profile changed later.

Writes read the user's full representation, change twostep's attributes and PUT back every
user-profile attribute (username, email, firstName, lastName, attributes): since Keycloak
24.0.4 a PUT removes the attributes it omits. Fields outside the user profile (enabled,
emailVerified, requiredActions) are left out, so Keycloak keeps them as they are and an
administrator's change made meanwhile is never reverted. Writes to one user are serialized
within a process; Keycloak has no compare-and-set, so two instances writing the same user in
the same instant keep the last write.
"""
from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from provider.directory.keycloak_api import KeycloakApi, segment
from provider.enrollment import Enrollment
from provider.enrollment.sql import phone_context, secret_context
from provider.errors import ConfigurationError, TwostepError
from provider.storage.encryption import DecryptionError, Encryptor

log = logging.getLogger(__name__)

PREFIX = "twostep."
FORMAT = 1
PROFILE_FIELDS = ("username", "email", "firstName", "lastName")
# A registration is about 200 characters; a length validator must leave room for it.
MIN_ATTRIBUTE_LENGTH = 512
_POLICIES = {"DISABLED": "Disabled", "ENABLED": "Enabled", "ADMIN_VIEW": "Admin can view",
             "ADMIN_EDIT": "Admin can edit"}
_LOCKS = 64


def attribute_name(channel: str) -> str:
    return PREFIX + channel


class KeycloakEnrollmentStore:
    """EnrollmentStore over Keycloak user attributes. Thread-safe."""

    def __init__(self, api: KeycloakApi, encryptor: Encryptor | None) -> None:
        self._api = api
        self._encryptor = encryptor
        self._locks = [threading.Lock() for _ in range(_LOCKS)]

    def list(self, user_id: str) -> list[Enrollment]:
        attributes = _attributes(self._read(user_id))
        found = [self._open(user_id, name.removeprefix(PREFIX), values)
                 for name, values in attributes.items() if name.startswith(PREFIX)]
        return sorted(found, key=lambda e: (e.last_used_at is None, -(e.last_used_at or 0.0), -e.created_at,
                                            e.channel))

    def get(self, user_id: str, channel: str) -> Enrollment | None:
        values = _attributes(self._read(user_id)).get(attribute_name(channel))
        return None if values is None else self._open(user_id, channel, values)

    def save(self, enrollment: Enrollment) -> None:
        name, value = attribute_name(enrollment.channel), self._seal(enrollment)
        with self._lock(enrollment.user_id):
            user = self._read_existing(enrollment.user_id)
            self._write(user, {**_attributes(user), name: [value]})
            if _attributes(self._read(enrollment.user_id)).get(name) != [value]:
                raise ConfigurationError(f"{self._api.description} dropped the attribute {name} of user"
                                         f" {enrollment.user_id}: its user profile no longer keeps twostep's"
                                         " attributes (declare them admin-only, or allow 'Admin can edit')")
        log.info("enrolment of user %s for channel %s saved", enrollment.user_id, enrollment.channel)

    def touch(self, user_id: str, channel: str, when: float) -> None:
        """Only moves forward, so a slow request finishing late cannot hide a newer use. The
        registration is sealed again, under the current key: rotation happens as users sign in."""
        with self._lock(user_id):
            user = self._read(user_id)
            attributes = _attributes(user)
            values = attributes.get(attribute_name(channel))
            if user is None or values is None:
                return
            enrollment = self._open(user_id, channel, values)
            if enrollment.last_used_at is not None and enrollment.last_used_at >= when:
                return
            sealed = self._seal(replace(enrollment, last_used_at=when))
            self._write(user, {**attributes, attribute_name(channel): [sealed]})

    def reencrypt_all(self, page: int = 100) -> int:
        """Seal every registration not under the current key again (`twostep keys reencrypt`);
        how many were rewritten. Walks all users of the realm, a page at a time."""
        rewritten, first = 0, 0
        while users := _list(self._api.admin_get("/users", {"first": str(first), "max": str(page)})):
            rewritten += sum(self._reencrypt(user["id"]) for user in users
                             if isinstance(user.get("id"), str) and self._stale(_attributes(user)))
            first += len(users)
        log.info("%d enrolment(s) re-encrypted under key %s", rewritten, self._current_kid())
        return rewritten

    def delete(self, user_id: str, channel: str | None = None) -> int:
        with self._lock(user_id):
            user = self._read(user_id)
            attributes = _attributes(user)
            doomed = [name for name in attributes if name.startswith(PREFIX)
                      and (channel is None or name == attribute_name(channel))]
            if user is not None and doomed:
                self._write(user, {k: v for k, v in attributes.items() if k not in doomed})
        log.info("%d enrolment(s) of user %s deleted (channel: %s)", len(doomed), user_id, channel or "all")
        return len(doomed)

    def ping(self) -> None:
        self._profile()

    def check_user_profile(self, channels: Iterable[str]) -> None:
        """Refuse to start when Keycloak would drop the writes: every user would then be asked
        to enrol again at each login."""
        problems = user_profile_problems(self._profile(), [attribute_name(c) for c in channels])
        if problems:
            raise ConfigurationError(
                f"{self._api.description} would silently drop twostep's enrolment attributes, and every user"
                " would be asked to enrol again at each login:\n  - " + "\n  - ".join(problems) +
                "\nFix: in the realm's Realm settings > User profile, create each attribute with 'Who can edit'"
                " and 'Who can view' set to Admin only; or set Realm settings > General > Unmanaged attributes"
                " to 'Admin can edit'.")

    # -- helpers -----------------------------------------------------------------------------

    def _stale(self, attributes: dict[str, Any]) -> list[str]:
        """twostep's attributes holding a value sealed under an older key."""
        encryptor = self._encryptor
        return [name for name, values in attributes.items() if name.startswith(PREFIX) and encryptor
                and any(isinstance(token, str) and encryptor.needs_reencrypt(token)
                        for token in (_record(values).get("secret"), _record(values).get("phone")))]

    def _reencrypt(self, user_id: str) -> int:
        """Re-read under the user's lock, so a registration saved meanwhile is never overwritten."""
        with self._lock(user_id):
            user = self._read(user_id)
            attributes = _attributes(user)
            stale = self._stale(attributes)
            if user is None or not stale:
                return 0
            resealed = {name: [self._seal(self._open(user_id, name.removeprefix(PREFIX), attributes[name]))]
                        for name in stale}
            self._write(user, {**attributes, **resealed})
            return len(stale)

    def _current_kid(self) -> str | None:
        return self._encryptor.current_kid if self._encryptor else None

    def _lock(self, user_id: str) -> threading.Lock:
        return self._locks[zlib.crc32(user_id.encode("utf-8", "surrogatepass")) % _LOCKS]

    def _profile(self) -> dict[str, Any]:
        profile = self._api.admin_get("/users/profile")
        if not isinstance(profile, dict):
            raise ConfigurationError(f"{self._api.description}: no such realm, or a Keycloak older than 24"
                                     " (enrollments: {type: keycloak} needs its user profile)")
        return profile

    def _read(self, user_id: str) -> dict[str, Any] | None:
        user = self._api.admin_get(f"/users/{segment(user_id)}") if user_id else None
        return user if isinstance(user, dict) else None

    def _read_existing(self, user_id: str) -> dict[str, Any]:
        user = self._read(user_id)
        if user is None:
            raise TwostepError(f"cannot save an enrolment: {self._api.description} has no user {user_id}")
        return user

    def _write(self, user: dict[str, Any], attributes: dict[str, Any]) -> None:
        body = {field: user[field] for field in PROFILE_FIELDS if field in user}
        if not self._api.admin_put(f"/users/{segment(user['id'])}", {**body, "attributes": attributes}):
            raise TwostepError(f"{self._api.description} has no user {user['id']} any more")

    def _seal(self, enrollment: Enrollment) -> str:
        user_id, channel = enrollment.user_id, enrollment.channel
        phone = None if enrollment.phone is None else enrollment.phone.encode("utf-8")
        return _dumps({
            "v": FORMAT,
            "kind": enrollment.kind,
            "secret": self._encrypt(enrollment.secret, secret_context(user_id, channel)),
            "phone": self._encrypt(phone, phone_context(user_id, channel)),
            "created_at": enrollment.created_at,
            "last_used_at": enrollment.last_used_at,
        })

    def _open(self, user_id: str, channel: str, values: Any) -> Enrollment:
        record = _record(values)
        phone = self._decrypt(record.get("phone"), phone_context(user_id, channel))
        return Enrollment(
            user_id=user_id,
            channel=channel,
            kind=record["kind"],
            secret=self._decrypt(record.get("secret"), secret_context(user_id, channel)),
            phone=None if phone is None else phone.decode("utf-8"),
            created_at=record["created_at"],
            last_used_at=record.get("last_used_at"),
        )

    def _encrypt(self, plaintext: bytes | None, context: str) -> str | None:
        if plaintext is None:
            return None
        if self._encryptor is None:
            raise ConfigurationError("encryption_key is required to keep factor secrets")
        return self._encryptor.encrypt(plaintext, context)

    def _decrypt(self, token: Any, context: str) -> bytes | None:
        if token is None:
            return None
        if self._encryptor is None or not isinstance(token, str):
            raise DecryptionError(f"cannot open the value sealed for {context!r}")
        return self._encryptor.decrypt(token, context)


def user_profile_problems(profile: dict[str, Any], names: list[str]) -> list[str]:
    """Why Keycloak's user profile would not keep these attributes, one sentence each."""
    declared = {a.get("name"): a for a in profile.get("attributes") or [] if isinstance(a, dict)}
    policy = profile.get("unmanagedAttributePolicy") or "DISABLED"
    problems: list[str] = []
    for name in names:
        attribute = declared.get(name)
        if attribute is None:
            if policy == "ENABLED":
                problems.append(f"{name}: not declared, and unmanaged attributes are 'Enabled', so users could"
                                " change or remove their own registrations in the account console")
            elif policy != "ADMIN_EDIT":
                problems.append(f"{name}: not declared in the user profile, and unmanaged attributes are"
                                f" {_POLICIES.get(policy, policy)!r}")
            continue
        problems += _managed_problems(name, attribute)
    return problems


def _managed_problems(name: str, attribute: dict[str, Any]) -> list[str]:
    permissions = attribute.get("permissions") or {}
    edit, view = set(permissions.get("edit") or ()), set(permissions.get("view") or ())
    problems = []
    if "admin" not in edit:
        problems.append(f"{name}: administrators may not edit it ('Who can edit' must be Admin)")
    if "user" in edit | view:
        problems.append(f"{name}: users can see or change it ('Who can view' and 'Who can edit' must be Admin only)")
    length = (attribute.get("validations") or {}).get("length")
    maximum = str(length.get("max", "")) if isinstance(length, dict) else ""
    if maximum.isdigit() and int(maximum) < MIN_ATTRIBUTE_LENGTH:
        problems.append(f"{name}: its length validator allows {maximum} characters;"
                        f" registrations need up to {MIN_ATTRIBUTE_LENGTH}")
    return problems


def _list(answer: Any) -> list[dict[str, Any]]:
    return [item for item in answer if isinstance(item, dict)] if isinstance(answer, list) else []


def _attributes(user: dict[str, Any] | None) -> dict[str, Any]:
    attributes = user.get("attributes") if user else None
    return dict(attributes) if isinstance(attributes, dict) else {}


def _record(values: Any) -> dict[str, Any]:
    """The stored JSON of one registration, checked; DecryptionError when it is none."""
    value = values[0] if isinstance(values, list) and len(values) == 1 else None
    try:
        record = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        record = None
    if not (isinstance(record, dict) and record.get("v") == FORMAT and isinstance(record.get("kind"), str)
            and isinstance(record.get("created_at"), int | float)):
        raise DecryptionError("a twostep attribute in Keycloak does not hold a registration in format 1")
    return record


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))
