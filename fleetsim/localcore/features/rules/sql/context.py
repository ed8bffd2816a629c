"""What an expression is evaluated against: one incoming message."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from fleetsim.localcore.features.rules.sql.values import UNDEFINED


class _NotJson:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NotJson"


NOT_JSON = _NotJson()


def decode_payload(payload: bytes) -> Any:
    """The payload as JSON, or NOT_JSON ("Working with binary payloads": anything that is not
    JSON is raw bytes to the rules engine). An empty payload is NOT_JSON too."""
    if not payload:
        return NOT_JSON
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return NOT_JSON


@dataclass
class MessageContext:
    topic: str
    payload: bytes
    client_id: str | None = None
    principal: str | None = None
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _doc: Any = UNDEFINED

    @property
    def document(self) -> Any:
        """The decoded payload (decoded once per message, shared by every rule)."""
        if self._doc is UNDEFINED:
            self._doc = decode_payload(self.payload)
        return self._doc
