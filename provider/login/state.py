"""FlowState: one login in progress, kept as versioned JSON in the state store.

Saved with compare-and-set, so two requests racing on one flow (a double submit, two
browsers) cannot both move it on: the second save loses and is answered from the stored
state instead.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from provider.clock import Clock
from provider.storage.state import StateStore

SCHEMA = 1
ACTIVE_FLOWS = "flows:active"  # expiring set of the flows in progress (the active-flows gauge)


class FlowNotFound(Exception):
    """No such flow: never started, expired, finished, or started by another browser."""


@dataclass(frozen=True)
class FlowState:
    id: str
    flow: str
    client_id: str
    browser: str  # digest of the browser-binding token kept in the browser's cookie
    request: dict[str, str]  # the authorization request this login will answer
    expires_at: float
    step: int = 0
    version: int = 0
    user_id: str | None = None
    username: str | None = None
    amr: tuple[str, ...] = ()  # RFC 8176 methods proven so far
    factors: tuple[str, ...] = ()  # channel names proven so far (a challenge after enrolment is skipped)
    error: str | None = None  # shown with the current step after a failed submit
    data: dict[str, Any] = field(default_factory=dict)  # scratch of the current step
    schema: int = SCHEMA

    def evolve(self, **changes: Any) -> FlowState:
        return replace(self, **changes)

    def proved(self, method: str, channel: str | None = None) -> FlowState:
        amr = self.amr if method in self.amr else (*self.amr, method)
        factors = self.factors if channel is None or channel in self.factors else (*self.factors, channel)
        return replace(self, amr=amr, factors=factors)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FlowState:
        raw = json.loads(text)
        if raw.get("schema") != SCHEMA:
            raise FlowNotFound("flow state written by an incompatible version")
        raw["amr"], raw["factors"] = tuple(raw["amr"]), tuple(raw["factors"])
        return cls(**raw)


CLAIM_TTL = 30  # seconds: longer than the slowest step (an RSA call with its retries)


class FlowStore:
    """FlowStates in a StateStore, under `flow:<id>`, expiring with the flow."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def create(self, **fields: Any) -> FlowState:
        state = FlowState(id=secrets.token_urlsafe(24), **fields)
        self._store.put(self._key(state.id), state.to_json(), self._ttl(state))
        self._store.track(ACTIVE_FLOWS, state.id, self._ttl(state))
        return state

    def load(self, flow_id: str) -> FlowState:
        text = self._store.get(self._key(flow_id)) if _plausible_id(flow_id) else None
        if text is None or not text.startswith("{"):  # absent, or consumed by finish()
            raise FlowNotFound(flow_id)
        state = FlowState.from_json(text)
        if state.expires_at <= self._clock.now():
            raise FlowNotFound(flow_id)
        return state

    def save(self, old: FlowState, new: FlowState) -> bool:
        """Compare-and-set: store `new` only if the stored state is still `old`."""
        new = new.evolve(version=old.version + 1)
        return self._store.replace(self._key(old.id), old.to_json(), new.to_json(), self._ttl(new))

    def finish(self, state: FlowState) -> bool:
        """Consume the flow: True for exactly one caller holding the current state. Nothing is
        left behind: a finished flow is as absent as one that never existed."""
        finished = self._store.delete_if(self._key(state.id), state.to_json())
        if finished:
            self._store.untrack(ACTIVE_FLOWS, state.id)
        return finished

    def claim(self, flow_id: str) -> bool:
        """Take the flow's submission lock (atomic add); False while another request holds it.
        It expires by itself, so a crashed request blocks the flow for CLAIM_TTL at most."""
        return self._store.add(f"flowlock:{flow_id}", "1", CLAIM_TTL)

    def release(self, flow_id: str) -> None:
        self._store.delete(f"flowlock:{flow_id}")

    def _ttl(self, state: FlowState) -> float:
        return max(1.0, state.expires_at - self._clock.now())

    @staticmethod
    def _key(flow_id: str) -> str:
        return f"flow:{flow_id}"


def _plausible_id(flow_id: str) -> bool:
    return 16 <= len(flow_id) <= 64 and flow_id.replace("-", "").replace("_", "").isalnum()
