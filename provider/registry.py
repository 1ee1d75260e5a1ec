"""Registries keyed by the YAML `type`: step types, channels, SMS gateways, RSA transports.

A subclass registers itself from `__init_subclass__` and fails loudly when written wrong: no
`type_name`, or a name taken twice, is a TypeError at import time, never a skipped plugin.
"""
from __future__ import annotations


def register(registry: dict[str, type], cls: type, kind: str) -> None:
    name = cls.__dict__.get("type_name")
    if not name:
        raise TypeError(f"{cls.__name__} must set type_name")
    if name in registry:
        raise TypeError(f"{kind} {name!r} is registered twice")
    registry[name] = cls
