"""JSON payloads stamped with their send time, for end-to-end latency at an observer.
(Templates are rendered by `fleetsim.scenario.templating`.)"""

from __future__ import annotations

import json
import time
from typing import Any

# Wall-clock send time in ns; an observer on the same host subtracts it from arrival time.
SENT_FIELD = "_sent_ns"


def encode(payload: Any, stamp: bool = False) -> bytes:
    """JSON bytes of `payload`; `stamp` adds the send time to a JSON object."""
    if stamp:
        if not isinstance(payload, dict):
            raise TypeError("only a JSON object payload can carry a send timestamp")
        payload = {**payload, SENT_FIELD: time.time_ns()}
    return json.dumps(payload, separators=(",", ":")).encode()
