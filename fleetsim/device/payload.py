"""Templated JSON payloads, stamped with their send time for end-to-end latency."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

# Wall-clock send time in ns; an observer on the same host subtracts it from arrival time.
SENT_FIELD = "_sent_ns"
_WHOLE = re.compile(r"^\{(\w+)\}$")


def render(template: Any, variables: Mapping[str, Any]) -> Any:
    """Fill `{name}` placeholders in every string of a JSON-like template. A string that is a
    single placeholder takes the variable's own value and type (`"{seq}"` -> 7), others are
    formatted (`"dev-{index}"` -> "dev-7"); `{{` and `}}` are literal braces."""
    if isinstance(template, str):
        whole = _WHOLE.match(template)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        try:
            return template.format_map(variables)
        except KeyError as e:
            raise KeyError(f"payload template uses unknown variable {e.args[0]!r}; "
                           f"known: {', '.join(sorted(variables))}") from None
    if isinstance(template, Mapping):
        return {render(k, variables): render(v, variables) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [render(v, variables) for v in template]
    return template


def encode(payload: Any, stamp: bool = False) -> bytes:
    """JSON bytes of `payload`; `stamp` adds the send time to a JSON object."""
    if stamp:
        if not isinstance(payload, dict):
            raise TypeError("only a JSON object payload can carry a send timestamp")
        payload = {**payload, SENT_FIELD: time.time_ns()}
    return json.dumps(payload, separators=(",", ":")).encode()
