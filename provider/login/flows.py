"""A flow, as operators write it in YAML: a list of steps, each a step type name or a
one-key mapping of the type to its options. Parsed once, into Step instances."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from provider.login.steps import STEP_TYPES, Step


class FlowProblem(Exception):
    """A flow cannot be used. `issues` are (YAML path within the flow, what was expected);
    `problems` the same as "path: what" lines."""

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        self.issues = issues
        self.problems = [f"{where or '(top level)'}: {what}" for where, what in issues]
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    acr: str | None = None  # the `acr` of logins through this flow; acr_values can ask for it


def parse_flow(name: str, raw: Any, channels: Mapping[str, Any] | None = None) -> Flow:
    """A flow file is a list of steps, or a mapping {acr: ..., steps: [...]}."""
    acr = None
    if isinstance(raw, dict):
        unknown = set(raw) - {"acr", "steps"}
        if unknown:
            raise FlowProblem([(str(sorted(unknown)[0]), "unknown key; a flow mapping has: acr, steps")])
        acr, raw = raw.get("acr"), raw.get("steps")
        if acr is not None and (not isinstance(acr, str) or not acr.strip()):
            raise FlowProblem([("acr", "expected a non-empty string")])
    if not isinstance(raw, list) or not raw:
        raise FlowProblem([("", "expected a non-empty list of steps, the first being 'password'")])
    steps, issues = [], []
    for index, item in enumerate(raw):
        try:
            steps.append(_parse_step(item, channels))
        except FlowProblem as problem:
            issues += [(f"{index}.{where}".rstrip("."), what) for where, what in problem.issues]
    if not issues and steps[0].type_name != "password":
        issues.append(("0", f"the first step must be 'password' (who is signing in?), found {steps[0].type_name!r}"))
    if issues:
        raise FlowProblem(issues)
    return Flow(name=name, steps=tuple(steps), acr=acr)


def _parse_step(item: Any, channels: Mapping[str, Any] | None) -> Step:
    if isinstance(item, str):
        type_name, options = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        type_name, options = next(iter(item.items()))
        options = {} if options is None else options
    else:
        raise FlowProblem([("", "expected a step name, or a mapping of one step name to its options")])
    cls = STEP_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        valid = ", ".join(sorted(STEP_TYPES))
        raise FlowProblem([("", f"unknown step type {type_name!r}; expected one of: {valid}")])
    try:
        context = {"channels": channels} if channels is not None else None
        return cls(cls.Options.model_validate(options, context=context))
    except ValidationError as error:
        issues = [(".".join(map(str, [type_name, *e["loc"]])), _expected(e, cls)) for e in error.errors()]
        raise FlowProblem(issues) from None


def _expected(error: Any, cls: type[Step]) -> str:
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        allowed = ", ".join(sorted(cls.Options.model_fields))
        if not allowed:
            return f"unknown option; {cls.type_name!r} takes no options"
        return f"unknown option; the options of {cls.type_name!r} are: {allowed}"
    if error["type"] == "extra_forbidden":
        return "unknown option"
    if error["type"] == "missing":
        return "required, but missing"
    return error["msg"].removeprefix("Value error, ")
