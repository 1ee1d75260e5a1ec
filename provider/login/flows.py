"""A flow, as operators write it in YAML: a list of steps, each a step type name or a
one-key mapping of the type to its options. Parsed once, into Step instances."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from provider.login.steps import STEP_TYPES, Step


class FlowProblem(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Flow:
    name: str
    steps: tuple[Step, ...]


def parse_flow(name: str, raw: Any) -> Flow:
    if not isinstance(raw, list) or not raw:
        raise FlowProblem(["(top level): expected a non-empty list of steps"])
    steps, problems = [], []
    for index, item in enumerate(raw):
        try:
            steps.append(_parse_step(item))
        except FlowProblem as problem:
            problems += [f"{index}.{p}" for p in problem.problems]
    if not problems and steps[0].type_name != "password":
        problems.append("0: the first step must be 'password' (who is signing in?)")
    if problems:
        raise FlowProblem(problems)
    return Flow(name=name, steps=tuple(steps))


def _parse_step(item: Any) -> Step:
    if isinstance(item, str):
        type_name, options = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        type_name, options = next(iter(item.items()))
        options = {} if options is None else options
    else:
        raise FlowProblem(["(step): expected a step name or a mapping of one step name to its options"])
    cls = STEP_TYPES.get(type_name)
    if cls is None:
        valid = ", ".join(sorted(STEP_TYPES))
        raise FlowProblem([f"{type_name}: unknown step type (valid: {valid})"])
    try:
        return cls(cls.Options.model_validate(options))
    except ValidationError as error:
        raise FlowProblem(
            [f"{type_name}.{'.'.join(map(str, e['loc'])) or '(options)'}: {e['msg']}" for e in error.errors()]
        ) from None
