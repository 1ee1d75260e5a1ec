"""What steps may use. Passed in, never imported, so steps stay pure and testable."""
from __future__ import annotations

from dataclasses import dataclass

from provider.clock import Clock
from provider.directory import Directory


@dataclass(frozen=True)
class Services:
    directory: Directory
    clock: Clock
