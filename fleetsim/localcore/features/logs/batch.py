"""PutLogEvents' rules for one batch ("PutLogEvents", CloudWatch Logs API reference): at most
10,000 events and 1,048,576 bytes (each message's UTF-8 length plus 26 bytes), in
chronological order, spanning at most 24 hours; events more than 2 hours in the future, more
than 14 days in the past or older than the group's retention are rejected while the others
are stored (`rejectedLogEventsInfo`: `tooNewLogEventStartIndex` is inclusive,
`tooOldLogEventEndIndex` and `expiredLogEventEndIndex` exclusive)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

MAX_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_FUTURE_MS = 2 * 3600 * 1000
MAX_PAST_MS = 14 * 86400 * 1000
MAX_SPAN_MS = 24 * 3600 * 1000
DAY_MS = 86400 * 1000


class InvalidBatch(ValueError):
    """A batch PutLogEvents refuses as a whole (InvalidParameterException)."""


@dataclass(frozen=True)
class Accepted:
    start: int                                       # events[start:end] are stored
    end: int
    rejected: dict[str, int] = field(default_factory=dict)


def batch_bytes(messages: Sequence[str]) -> int:
    return sum(len(m.encode()) for m in messages) + EVENT_OVERHEAD_BYTES * len(messages)


def check_batch(events: Sequence[tuple[int, str]], now_ms: int,
                retention_days: int | None) -> Accepted:
    if len(events) > MAX_EVENTS:
        raise InvalidBatch(f"A PutLogEvents request takes at most {MAX_EVENTS} log events, "
                           f"this one has {len(events)}.")
    size = batch_bytes([m for _, m in events])
    if size > MAX_BATCH_BYTES:
        raise InvalidBatch(f"Upload too large: {size} bytes exceeds limit of "
                           f"{MAX_BATCH_BYTES}")
    times = [t for t, _ in events]
    if any(b < a for a, b in pairwise(times)):
        raise InvalidBatch("Log events in a single PutLogEvents request must be in "
                           "chronological order.")
    too_old = sum(1 for t in times if t < now_ms - MAX_PAST_MS)
    expired = (sum(1 for t in times if t < now_ms - retention_days * DAY_MS)
               if retention_days else 0)
    too_new = next((i for i, t in enumerate(times) if t > now_ms + MAX_FUTURE_MS), len(times))
    start = max(too_old, expired)
    end = max(too_new, start)
    if end > start and times[end - 1] - times[start] > MAX_SPAN_MS:
        raise InvalidBatch("The batch of log events in a single PutLogEvents request cannot "
                           "span more than 24 hours.")
    rejected: dict[str, int] = {}
    if too_new < len(times):
        rejected["tooNewLogEventStartIndex"] = too_new
    if too_old:
        rejected["tooOldLogEventEndIndex"] = too_old
    if expired:
        rejected["expiredLogEventEndIndex"] = expired
    return Accepted(start, end, rejected)
