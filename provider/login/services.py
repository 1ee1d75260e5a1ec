"""What steps may use. Passed in, never imported, so steps stay pure and testable."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provider.clock import Clock
from provider.directory import Directory
from provider.enrollment import EnrollmentStore
from provider.login.throttle import Throttle
from provider.storage.encryption import Encryptor
from provider.storage.state import StateStore


@dataclass(frozen=True)
class Services:
    directory: Directory
    clock: Clock
    enrollments: EnrollmentStore
    state: StateStore  # counters and replay guards
    encryptor: Encryptor | None  # None when no channel keeps secrets
    channels: Mapping[str, Any]  # name -> provider.channels.Channel
    throttle: Throttle
    client_ip: str | None = None  # of the request being served: the engine sets it per call
