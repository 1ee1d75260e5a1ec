"""SSO sessions: who is signed in to twostep in this browser, since when, and with which
factors. A new random id at every login (no fixation); the cookie holds only that id."""
from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

from provider.clock import Clock
from provider.storage.state import StateStore


@dataclass(frozen=True)
class SsoSession:
    id: str  # secret: the cookie value
    sid: str  # public: the `sid` claim relying parties see (OIDC Front-Channel Logout 1.0 section 3)
    user_id: str
    auth_time: int
    amr: tuple[str, ...]
    flows: tuple[str, ...]  # flows completed in this session: a client on another flow re-authenticates

    def satisfies(self, flow: str, max_age: int | None, now: float) -> bool:
        if flow not in self.flows:
            return False
        return max_age is None or now - self.auth_time <= max_age


class SessionStore:
    def __init__(self, store: StateStore, clock: Clock, ttl: int) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl

    def create(self, user_id: str, amr: tuple[str, ...], flow: str, previous: SsoSession | None = None) -> SsoSession:
        """A new session. The same user signing in again (step-up, prompt=login) keeps the flows
        the previous session completed; anyone else starts from nothing."""
        flows = (flow,)
        if previous is not None and previous.user_id == user_id:
            flows = (*[f for f in previous.flows if f != flow], flow)
        session = SsoSession(id=secrets.token_urlsafe(32), sid=secrets.token_urlsafe(16), user_id=user_id,
                             auth_time=int(self._clock.now()), amr=amr, flows=flows)
        self._store.put(f"sso:{session.id}", json.dumps(asdict(session)), self._ttl)
        return session

    def get(self, session_id: str | None) -> SsoSession | None:
        if not session_id or len(session_id) > 64:
            return None
        text = self._store.get(f"sso:{session_id}")
        if text is None:
            return None
        raw = json.loads(text)
        return SsoSession(**{**raw, "amr": tuple(raw["amr"]), "flows": tuple(raw["flows"])})

    def end(self, session_id: str) -> None:
        self._store.delete(f"sso:{session_id}")
