"""What the logs feature hands out: log groups, streams and events (times in ms)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogGroup:
    id: int
    region: str
    name: str
    created: int
    retention_days: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class LogStream:
    id: int
    group_id: int
    name: str
    created: int
    first_event: int | None
    last_event: int | None
    last_ingestion: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class LogEvent:
    id: int
    stream_name: str
    timestamp: int
    ingestion: int
    message: str
