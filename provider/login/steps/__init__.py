"""Step types, registered by their YAML name. A step module defines one `Step` subclass with
`type_name`; importing it registers it. An unknown type is a configuration error that lists
the valid ones."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from provider.login.outcomes import Render, Submitted
from provider.login.services import Services
from provider.login.state import FlowState
from provider.registry import register

STEP_TYPES: dict[str, type[Step]] = {}


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupCondition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    groups: list[str] = Field(min_length=1)


class StepOptions(NoOptions):
    """Options every configurable step has: `when`/`unless` the user is in one of some groups.
    This is how "if two-step verification is enabled for your account" is written."""

    when: GroupCondition | None = None
    unless: GroupCondition | None = None


class ChannelStepOptions(StepOptions):
    """A step over channels named in the settings' `channels:` (checked at load time)."""

    channels: list[str] = Field(min_length=1)
    self_enrolling: ClassVar[bool] = False

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, names: list[str], info: ValidationInfo) -> list[str]:
        configured = (info.context or {}).get("channels")
        if configured is None:
            return names
        for name in names:
            if name not in configured:
                raise ValueError(f"unknown channel {name!r} (channels: {', '.join(sorted(configured)) or 'none'})")
            if cls.self_enrolling and not configured[name].self_enrollment:
                raise ValueError(f"channel {name!r} cannot self-enrol: its factors are managed by an administrator")
        if len(set(names)) != len(names):
            raise ValueError("a channel is listed twice")
        return names


class Step:
    """One kind of step. Pure logic: it reads the flow state, the submitted form and the
    services, and answers with an outcome; it never drives the engine."""

    type_name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register(STEP_TYPES, cls, "step type")

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    def applies(self, state: FlowState, services: Services) -> bool:
        """False to skip this step for this login. The base rule: `when` / `unless` groups."""
        when, unless = getattr(self.options, "when", None), getattr(self.options, "unless", None)
        if when is None and unless is None:
            return True
        user = services.directory.get(state.user_id) if state.user_id else None
        groups = set(user.groups) if user else set()
        if when is not None and not groups & set(when.groups):
            return False
        return unless is None or not groups & set(unless.groups)

    def show(self, state: FlowState, services: Services) -> Render:
        raise NotImplementedError

    def submit(self, state: FlowState, form: Mapping[str, str], services: Services) -> Submitted:
        raise NotImplementedError


# Importing the step modules registers them; a broken one fails loudly here.
from provider.login.steps import challenge, enroll, password  # noqa: E402,F401
