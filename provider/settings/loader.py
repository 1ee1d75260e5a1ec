"""Read, interpolate and validate a settings file and its flow files.

Every problem is reported with the file, the YAML path and what was expected, and all
problems come at once (`SettingsError.problems`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from provider.channels import CHANNEL_TYPES, Channel
from provider.login.flows import Flow, FlowProblem, parse_flow
from provider.settings.models import DEFAULT_FLOWS, Settings, SettingsError
from provider.settings.warnings import warnings_for

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_settings(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate and validate a settings file and its flows. Raises SettingsError."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    problems = _Problems()
    raw = _interpolate(_read_yaml(path), environ, (), problems.missing_variable(path))
    if not isinstance(raw, dict):
        raise SettingsError([f"{path}: (top level): expected a mapping of settings (issuer, secret_key, clients, ...)"
                             f", found {_kind(raw)}"])
    settings = None
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        for e in error.errors():
            problems.add(path, _yaml_path(raw, e["loc"]), _expected(e))
    base_dir = path.parent.resolve()
    channels = _load_channels(raw.get("channels"), path, problems)
    if channels and not raw.get("encryption_key"):
        problems.add(path, "encryption_key", "required when channels are configured: factor secrets are"
                                             " encrypted with it (at least 32 characters)")
    flows, defined = _load_flows(raw.get("flows", DEFAULT_FLOWS), base_dir, path, environ, problems, channels)
    _cross_check(raw, defined, path, problems)
    _check_keycloak(raw, base_dir, path, problems)
    _check_acr(flows, path, problems)
    if problems.lines or settings is None:
        raise SettingsError(problems.lines)
    settings._base_dir = base_dir
    settings._flows = flows
    settings._channels = channels
    settings._warnings = warnings_for(settings)
    return settings


def _load_channels(spec: Any, path: Path, problems: _Problems) -> dict[str, Channel]:
    """Each channel validated by the model of its `type` (the registry's key)."""
    if not isinstance(spec, dict):
        return {}  # absent, or malformed: the model reports it
    channels: dict[str, Channel] = {}
    for name, options in spec.items():
        kind = options.get("type") if isinstance(options, dict) else None
        cls = CHANNEL_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            valid = ", ".join(sorted(CHANNEL_TYPES))
            problems.add(path, f"channels.{name}.type", f"expected one of: {valid}; found {kind!r}")
            continue
        try:
            channels[str(name)] = cls(str(name), cls.Settings.model_validate(options))
        except ValidationError as error:
            for e in error.errors():
                problems.add(path, _join(f"channels.{name}", ".".join(map(str, e["loc"]))),
                             _expected(e, cls.Settings))
    return channels


def _check_acr(flows: dict[str, Flow], path: Path, problems: _Problems) -> None:
    owners: dict[str, str] = {}
    for name, flow in sorted(flows.items()):
        if flow.acr is None:
            continue
        if flow.acr in owners:
            problems.add(path, "flows", f"flows {owners[flow.acr]!r} and {name!r} have the same acr {flow.acr!r}")
        owners.setdefault(flow.acr, name)


class _Problems:
    """"file: YAML path: what was expected" lines, in the order found. Where a variable was
    missing, the empty value it left is not complained about a second time."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._unset: set[tuple[str, str]] = set()

    def add(self, file: Path | str, where: tuple | list | str, what: str) -> None:
        dotted = _dotted(where)
        if not any(f == str(file) and (dotted + ".").startswith(u + ".") for f, u in self._unset):
            self.lines.append(f"{file}: {dotted}: {what}")

    def missing_variable(self, file: Path) -> Callable[[tuple, str], None]:
        def report(where: tuple, what: str) -> None:
            self.add(file, where, what)
            self._unset.add((str(file), _dotted(where)))

        return report


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as error:
        raise SettingsError([f"{path}: cannot read: {error.strerror or error}"]) from None
    except UnicodeDecodeError as error:
        raise SettingsError([f"{path}: not UTF-8 text (byte {error.start})"]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SettingsError([f"{path}: {where}not valid YAML: {error.problem or error.context}"]) from None
    except yaml.YAMLError as error:
        raise SettingsError([f"{path}: not valid YAML: {error}"]) from None


def _interpolate(value: Any, environ: Mapping[str, str], where: tuple, report) -> Any:
    """Replace ${VAR} and ${VAR:-default} in string values (never in keys, never re-parsed)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, environ, (*where, k), report) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environ, (*where, i), report) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if environ.get(name):
            return environ[name]
        if default is not None:
            return default
        report(where, f"environment variable {name} is not set (or empty) and ${{{name}}} has no default;"
                      f" set it, or write ${{{name}:-default}}")
        return ""

    return _VARIABLE.sub(substitute, value)


def _load_flows(
    spec: Any, base_dir: Path, path: Path, environ: Mapping[str, str], problems: _Problems,
    channels: Mapping[str, Channel],
) -> tuple[dict[str, Flow], set[str] | None]:
    """The parsed flows, and the names of all flows defined (broken ones too; None when
    `flows` itself is malformed, which the model reports)."""
    sources: dict[str, tuple[Path, str, Any]] = {}  # name -> (file, YAML path prefix, steps)
    unreadable: set[str] = set()
    if isinstance(spec, dict):
        if not spec:
            problems.add(path, "flows", "no flows; expected a mapping of flow names to lists of steps")
        sources = {str(name): (path, f"flows.{name}", steps) for name, steps in spec.items()}
    elif isinstance(spec, str):
        folder = (base_dir / spec).resolve()
        files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
        if not files:
            problems.add(path, "flows", f"expected a folder with flow files (*.yaml), found none in {folder}")
        for file in files:
            try:
                sources[file.stem] = (file, "", _interpolate(_read_yaml(file), environ, (),
                                                             problems.missing_variable(file)))
            except SettingsError as error:
                problems.lines += error.problems
                unreadable.add(file.stem)
    else:
        return {}, None
    flows: dict[str, Flow] = {}
    for name, (file, prefix, steps) in sources.items():
        try:
            flows[name] = parse_flow(name, steps, channels)
        except FlowProblem as problem:
            for where, what in problem.issues:
                problems.add(file, _join(prefix, where), what)
    return flows, set(sources) | unreadable


def _cross_check(raw: dict, flows: set[str] | None, path: Path, problems: _Problems) -> None:
    """What no single field can see. Works on the raw mapping, so these problems are
    reported together with the field problems."""
    clients = raw.get("clients")
    seen: set[str] = set()
    for i, client in enumerate(clients if isinstance(clients, list) else []):
        if not isinstance(client, dict):
            continue
        client_id, flow = client.get("client_id"), client.get("flow", "default")
        if isinstance(client_id, str) and client_id in seen:
            problems.add(path, f"clients.{i}.client_id", f"duplicate client_id {client_id!r}")
        if isinstance(client_id, str):
            seen.add(client_id)
        if flows and isinstance(flow, str) and flow not in flows:
            where = f"clients.{i}.flow" + ("" if "flow" in client else " (default)")
            problems.add(path, where, f"unknown flow {flow!r}; expected one of: {', '.join(sorted(flows))}")
    demo = raw.get("demo")
    relying_party = demo.get("relying_party") if isinstance(demo, dict) else None
    if isinstance(relying_party, str) and relying_party not in seen:
        problems.add(path, "demo.relying_party", f"expected the client_id of a client, found {relying_party!r}")


def _check_keycloak(raw: dict, base_dir: Path, path: Path, problems: _Problems) -> None:
    """What the Keycloak directory and enrolment store need beyond their own fields."""
    directory, enrollments = raw.get("directory"), raw.get("enrollments")
    keycloak = isinstance(directory, dict) and directory.get("type") == "keycloak"
    ca_file = directory.get("ca_file") if keycloak else None
    if isinstance(ca_file, str) and ca_file and not (base_dir / ca_file).is_file():
        problems.add(path, "directory.ca_file", f"no such file: {(base_dir / ca_file).resolve()}")
    demo = raw.get("demo")
    if keycloak and isinstance(demo, dict) and demo.get("users"):
        problems.add(path, "demo.users", "demo users are added to the built-in directory; with directory.type"
                                         " keycloak, create them in Keycloak")
    if not (isinstance(enrollments, dict) and enrollments.get("type") == "keycloak"):
        return
    if directory is None or (isinstance(directory, dict) and directory.get("type") == "builtin"):
        problems.add(path, "enrollments.type", "enrolments kept in Keycloak are attributes of Keycloak users:"
                                               " they need directory.type keycloak, found 'builtin'")
    channels = raw.get("channels")
    for name, options in channels.items() if isinstance(channels, dict) else ():
        kind = CHANNEL_TYPES.get(options["type"]) if isinstance(options, dict) and isinstance(
            options.get("type"), str) else None
        if kind is not None and kind.self_enrollment and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(name)):
            problems.add(path, f"channels.{name}", "with enrollments.type keycloak the channel name becomes the"
                                                   " Keycloak attribute twostep.<name>: use letters, digits, - and _")


def _yaml_path(raw: Any, loc: tuple) -> list:
    """Pydantic's error location as a YAML path: without the union tags pydantic inserts
    (`directory.builtin.password_hash` is `directory.password_hash` in the file)."""
    path, node = [], raw
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and i == len(loc) - 1:
            path.append(part)  # a required key that is missing
    return path


def _expected(error: Any, root: type[BaseModel] | None = None) -> str:
    """What was expected, in words; `root` is the model the error's location starts from."""
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1], root or Settings)
        return "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if error["type"] == "missing":
        return "required, but missing"
    return error["msg"].removeprefix("Value error, ")


def _allowed_keys(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The keys the model at this pydantic location accepts (for "unknown key" messages)."""
    node: Any = root
    for part in loc:
        models = _models_in(node)
        if isinstance(part, int):
            node = get_args(node)[0] if get_origin(node) is list else None
        elif fields := [m.model_fields[part] for m in models if part in m.model_fields]:
            node = fields[0].annotation
        elif tagged := [m for m in models if "type" in m.model_fields
                        and part in get_args(m.model_fields["type"].annotation)]:
            node = tagged[0]  # a tagged union: the member whose `type` is `part`
        else:
            return []
    return sorted({key for model in _models_in(node) for key in model.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes of `X`, `X | None` or `X | Y`."""
    members = get_args(annotation) if get_origin(annotation) is not None else (annotation,)
    return [m for m in members if isinstance(m, type) and get_origin(m) is None and issubclass(m, BaseModel)]


def _join(prefix: str, where: str) -> str:
    return ".".join(part for part in (prefix, where) if part)


def _kind(value: Any) -> str:
    return "nothing (an empty file)" if value is None else f"a {type(value).__name__}"


def _dotted(location: tuple | list | str) -> str:
    if isinstance(location, str):
        return location or "(top level)"
    return ".".join(str(part) for part in location) or "(top level)"
