"""Step types, registered by their YAML name. A step module defines one `Step` subclass with
`type_name`; importing it registers it. An unknown type is a configuration error that lists
the valid ones."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from provider.login.outcomes import Render, Submitted
from provider.login.services import Services
from provider.login.state import FlowState

STEP_TYPES: dict[str, type[Step]] = {}


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step:
    """One kind of step. Pure logic: it reads the flow state, the submitted form and the
    services, and answers with an outcome; it never drives the engine."""

    type_name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type_name")
        if not name:
            raise TypeError(f"{cls.__name__} must set type_name")
        if name in STEP_TYPES:
            raise TypeError(f"step type {name!r} is registered twice")
        STEP_TYPES[name] = cls

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    def applies(self, state: FlowState, services: Services) -> bool:
        """False to skip this step for this login."""
        return True

    def show(self, state: FlowState, services: Services) -> Render:
        raise NotImplementedError

    def submit(self, state: FlowState, form: Mapping[str, str], services: Services) -> Submitted:
        raise NotImplementedError


# Importing the step modules registers them; a broken one fails loudly here.
from provider.login.steps import password  # noqa: E402,F401
