"""CloudWatch Logs for what local core and its users write: log groups and streams per region,
PutLogEvents with AWS's batch rules, GetLogEvents with its forward and backward tokens, and
FilterLogEvents with filter patterns (`pattern.py`). The only writer of the logs tables.

Other features write their own logs with `put_events(region, group, stream, events)`, which
creates the group and stream when missing, as AWS services writing their logs do (Lambda's
`/aws/lambda/<name>`, AWS IoT's `AWSIotLogsV2`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.logs import tokens
from fleetsim.localcore.features.logs.batch import DAY_MS, Accepted, InvalidBatch, check_batch
from fleetsim.localcore.features.logs.pattern import PatternError, compile_pattern
from fleetsim.localcore.features.logs.records import LogEvent, LogGroup, LogStream
from fleetsim.localcore.features.logs.store import LogsStore

# PutRetentionPolicy's accepted values ("PutRetentionPolicy", CloudWatch Logs API reference).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                  2192, 2557, 2922, 3288, 3653)
MAX_EVENTS_PER_PAGE = 10_000
MAX_PAGE_BYTES = 1_048_576
FILTER_SCAN_ROWS = 20_000     # rows one FilterLogEvents call examines at most (then nextToken)
_SCAN_CHUNK = 2_000
_NO_END = 2**62


def invalid_parameter(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def _group_missing() -> AwsError:
    return AwsError("ResourceNotFoundException", "The specified log group does not exist.")


def _stream_missing() -> AwsError:
    return AwsError("ResourceNotFoundException", "The specified log stream does not exist.")


@dataclass(frozen=True)
class EventsPage:
    events: list[LogEvent]
    forward_token: str
    backward_token: str


@dataclass(frozen=True)
class FilteredPage:
    events: list[LogEvent]
    next_token: str | None


class LogsService:
    def __init__(self, db: Database, clock_ms: Callable[[], int]):
        self._db = db
        self._store = LogsStore(db)
        self._clock = clock_ms
        # (region, group) -> group id and (group id, stream) -> stream id, for put_events.
        self._ids: dict[tuple[str, str] | tuple[int, str], int] = {}

    # --- groups ------------------------------------------------------------------------------

    def _group(self, region: str, name: str) -> LogGroup:
        group = self._store.group(region, name)
        if group is None:
            raise _group_missing()
        return group

    def create_group(self, region: str, name: str) -> None:
        with self._db.transaction():
            if self._store.group(region, name) is not None:
                raise AwsError("ResourceAlreadyExistsException",
                               "The specified log group already exists")
            self._store.add_group(region, name, self._clock())

    def describe_groups(self, region: str, prefix: str, contains: str, after: str,
                        limit: int) -> tuple[list[LogGroup], str | None]:
        """Groups by name after `after`; the name of the last as the next page's key."""
        page = self._store.groups(region, prefix, contains, after, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        return page, (page[-1].name if more else None)

    def delete_group(self, region: str, name: str) -> None:
        with self._db.transaction():
            self._store.delete_group(self._group(region, name).id)
        self._ids.clear()

    def put_retention(self, region: str, name: str, days: int) -> None:
        if days not in RETENTION_DAYS:
            raise invalid_parameter(
                f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to "
                "satisfy constraint: Member must satisfy enum value set: "
                f"[{', '.join(str(d) for d in RETENTION_DAYS)}]")
        with self._db.transaction():
            group = self._group(region, name)
            self._store.set_retention(group.id, days)
            self._store.expire(group.id, self._clock() - days * DAY_MS)

    def delete_retention(self, region: str, name: str) -> None:
        with self._db.transaction():
            self._store.set_retention(self._group(region, name).id, None)

    def expire_all(self) -> None:
        """Drop events older than their group's retention (at start)."""
        now = self._clock()
        with self._db.transaction():
            for group_id, days in self._store.retained_groups():
                self._store.expire(group_id, now - days * DAY_MS)

    # --- streams -----------------------------------------------------------------------------

    def _stream(self, region: str, group: str, name: str) -> tuple[LogGroup, LogStream]:
        log_group = self._group(region, group)
        stream = self._store.stream(log_group.id, name)
        if stream is None:
            raise _stream_missing()
        return log_group, stream

    def create_stream(self, region: str, group: str, name: str) -> None:
        with self._db.transaction():
            group_id = self._group(region, group).id
            if self._store.stream(group_id, name) is not None:
                raise AwsError("ResourceAlreadyExistsException",
                               "The specified log stream already exists")
            self._store.add_stream(group_id, name, self._clock())

    def describe_streams(self, region: str, group: str, prefix: str, order_by: str,
                         descending: bool, offset: int, limit: int
                         ) -> tuple[list[LogStream], int | None]:
        if prefix and order_by == "LastEventTime":
            raise invalid_parameter("Cannot order by LastEventTime with a logStreamNamePrefix.")
        group_id = self._group(region, group).id
        page = self._store.streams(group_id, prefix, order_by, descending, offset, limit + 1)
        more = len(page) > limit
        return page[:limit], (offset + limit if more else None)

    def delete_stream(self, region: str, group: str, name: str) -> None:
        with self._db.transaction():
            self._store.delete_stream(self._stream(region, group, name)[1].id)
        self._ids.clear()

    # --- writing -----------------------------------------------------------------------------

    def put_log_events(self, region: str, group: str, stream: str,
                       events: Sequence[tuple[int, str]]) -> Accepted:
        """PutLogEvents: the batch checked as AWS does; what is accepted is stored."""
        with self._db.transaction():
            log_group, log_stream = self._stream(region, group, stream)
            try:
                accepted = check_batch(events, self._clock(), log_group.retention_days)
            except InvalidBatch as e:
                raise invalid_parameter(str(e)) from e
            if accepted.end > accepted.start:
                self._store.append(log_group.id, log_stream.id,
                                   events[accepted.start:accepted.end], self._clock())
        return accepted

    def put_events(self, region: str, group: str, stream: str,
                   events: Sequence[tuple[int, str]]) -> None:
        """Store a feature's own log events (timestamps in ms), creating the group and the
        stream if missing. Called from the event loop; one transaction per call."""
        if not events:
            return
        with self._db.transaction():
            group_id = self._ids.get((region, group))
            if group_id is None:
                found = self._store.group(region, group)
                group_id = (found.id if found is not None
                            else self._store.add_group(region, group, self._clock()))
            stream_id = self._ids.get((group_id, stream))
            if stream_id is None:
                found_stream = self._store.stream(group_id, stream)
                stream_id = (found_stream.id if found_stream is not None
                             else self._store.add_stream(group_id, stream, self._clock()))
            self._store.append(group_id, stream_id, events, self._clock())
        self._ids[region, group] = group_id
        self._ids[group_id, stream] = stream_id

    # --- reading -----------------------------------------------------------------------------

    def get_log_events(self, region: str, group: str, stream: str, start: int | None,
                       end: int | None, token: str | None, limit: int | None,
                       from_head: bool) -> EventsPage:
        """GetLogEvents: without a token, the earliest events (startFromHead) or the latest;
        with one, the events after (`f/`) or before (`b/`) it. At the end of the stream the
        token passed in comes back unchanged."""
        stream_id = self._stream(region, group, stream)[1].id
        if token:
            try:
                cursor = tokens.parse(token)
            except tokens.BadToken as e:
                raise invalid_parameter(str(e)) from e
        else:
            cursor = tokens.Cursor(from_head, tokens.HEAD if from_head else tokens.TAIL)
        size = min(limit or MAX_EVENTS_PER_PAGE, MAX_EVENTS_PER_PAGE)
        events = self._store.read_stream(stream_id, start or 0, _end(end), cursor.position,
                                         cursor.forward, size)
        events = _within_bytes(events)
        if not cursor.forward:
            events.reverse()
        if not events:
            same = token or cursor.token()
            at = cursor.position
            forward = same if cursor.forward else tokens.Cursor(True, at).token()
            backward = same if not cursor.forward else tokens.Cursor(False, at).token()
            return EventsPage([], forward, backward)
        first, last = events[0], events[-1]
        return EventsPage(events, tokens.Cursor(True, (last.timestamp, last.id)).token(),
                          tokens.Cursor(False, (first.timestamp, first.id)).token())

    def filter_log_events(self, region: str, group: str, names: Sequence[str] | None,
                          prefix: str | None, start: int | None, end: int | None,
                          pattern: str | None, token: str | None, limit: int | None
                          ) -> FilteredPage:
        """FilterLogEvents: the group's events (of some streams) in time order that match
        the pattern. One call examines at most FILTER_SCAN_ROWS events, then answers what it
        found (perhaps nothing) with a nextToken, as CloudWatch Logs may."""
        if names is not None and prefix is not None:
            raise invalid_parameter("logStreamNames and logStreamNamePrefix cannot both be "
                                    "specified.")
        try:
            compiled = compile_pattern(pattern)
        except PatternError as e:
            raise invalid_parameter(str(e)) from e
        try:
            after = tokens.parse_filter_token(token) if token else tokens.HEAD
        except tokens.BadToken as e:
            raise invalid_parameter(str(e)) from e
        log_group = self._group(region, group)
        by_id = self._store.stream_ids(log_group.id, names, prefix or "")
        streams = None if names is None and not prefix else list(by_id)
        if streams == []:
            return FilteredPage([], None)
        want = min(limit or MAX_EVENTS_PER_PAGE, MAX_EVENTS_PER_PAGE)
        found: list[LogEvent] = []
        scanned = size = 0
        while True:
            rows = self._store.scan_group(log_group.id, streams, start or 0, _end(end), after,
                                          compiled.required, _SCAN_CHUNK)
            for event_id, stream_id, ts, ingestion, message in rows:
                after = (ts, event_id)
                scanned += 1
                if compiled.matches(message):
                    if stream_id not in by_id:
                        by_id.update(self._store.stream_ids(log_group.id, None, ""))
                    found.append(LogEvent(event_id, by_id[stream_id], ts, ingestion, message))
                    size += len(message) + 26
                    if len(found) >= want or size >= MAX_PAGE_BYTES:
                        return FilteredPage(found, tokens.filter_token(after))
            if len(rows) < _SCAN_CHUNK:
                return FilteredPage(found, None)
            if scanned >= FILTER_SCAN_ROWS:
                return FilteredPage(found, tokens.filter_token(after))


def _end(end: int | None) -> int:
    return _NO_END if end is None else end


def _within_bytes(events: list[LogEvent]) -> list[LogEvent]:
    """At most 1 MB of events (GetLogEvents answers up to 1 MB or 10,000 events)."""
    size = 0
    for i, event in enumerate(events):
        size += len(event.message) + 26
        if size > MAX_PAGE_BYTES:
            return events[:max(i, 1)]
    return events
