"""Audit events: one JSON line per event on the `twostep.audit` logger.

Callers pass identifiers and outcomes only: never a password, passcode, code, secret or full
phone number. Fields that are None are left out.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

logger = logging.getLogger("twostep.audit")


def audit(event: str, **fields: Any) -> None:
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
    record.update({key: value for key, value in fields.items() if value is not None})
    logger.info(json.dumps(record, sort_keys=False, default=str))
