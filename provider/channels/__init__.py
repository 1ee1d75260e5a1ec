"""Second-factor channels, registered by their YAML `type`.

A channel module defines one `Channel` subclass with `type_name`, its `Settings` model and
the screens of enrolment and challenge. Importing the module registers it; an unknown type is
a configuration error that lists the valid ones. The login steps `enroll` and `challenge`
delegate to the channel; nothing else knows what a channel does.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from provider.enrollment import Enrollment
from provider.login.outcomes import Render, Submitted
from provider.login.state import FlowState
from provider.registry import register

CHANNEL_TYPES: dict[str, type[Channel]] = {}


class ChannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    label: str | None = Field(None, min_length=1, max_length=64,
                              description="what users are offered; default: the channel type's own")


class Channel:
    type_name: ClassVar[str]
    Settings: ClassVar[type[ChannelSettings]] = ChannelSettings
    self_enrollment: ClassVar[bool] = True  # False: administrator-managed (RSA)
    amr: ClassVar[str]  # the RFC 8176 method a success proves
    label: ClassVar[str]  # what users are offered, e.g. on "choose a method"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register(CHANNEL_TYPES, cls, "channel type")

    def __init__(self, name: str, settings: ChannelSettings) -> None:
        self.name = name
        self.settings = settings

    @property
    def display_label(self) -> str:
        """The operator's label for this channel, else its type's (two apps need two names)."""
        return self.settings.label or self.label

    def warnings(self) -> list[str]:
        """Settings that work but that an operator should know about (check-config)."""
        return []

    def registration_for(self, user_id: str, services: Any) -> Enrollment | None:
        """The registration an administrator-managed channel (`self_enrollment = False`) gives
        every user, who has no record in the EnrollmentStore; None for self-enrolling channels,
        whose registrations are in the EnrollmentStore."""
        return None

    def enroll_show(self, state: FlowState, services: Any) -> Render:
        raise NotImplementedError

    def enroll_submit(self, state: FlowState, form: Mapping[str, str], services: Any) -> Submitted:
        raise NotImplementedError

    def challenge_show(self, state: FlowState, enrollment: Enrollment, services: Any) -> Render:
        raise NotImplementedError

    def challenge_submit(self, state: FlowState, form: Mapping[str, str], enrollment: Enrollment,
                         services: Any) -> Submitted:
        raise NotImplementedError


# Importing the channel modules registers them; a broken one fails loudly here.
from provider.channels import rsa, sms, totp  # noqa: E402,F401
