"""What a step (and the engine) can answer. Frozen values, never integers or tuples."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provider.login.state import FlowState


@dataclass(frozen=True)
class Render:
    """Show `screen` (a template name without .html) with these values. A step that must
    remember something it showed (an enrolment secret) returns the state to save."""

    screen: str
    values: Mapping[str, Any] = field(default_factory=dict)
    state: FlowState | None = None


@dataclass(frozen=True)
class Next:
    """The step is complete; the engine moves on with this state."""

    state: FlowState


@dataclass(frozen=True)
class Stay:
    """The step is not complete: keep the user on it with this state and an error sentence.
    `failed` marks a failed proof (wrong password, wrong code): it counts towards throttling."""

    state: FlowState
    error: str | None = None
    failed: bool = False


@dataclass(frozen=True)
class Fail:
    """The login cannot go on; the user sees the sentence and must start again."""

    message: str


@dataclass(frozen=True)
class Done:
    """Every step is complete: the authorization response can be produced from `state`."""

    state: FlowState


Submitted = Next | Stay | Fail
