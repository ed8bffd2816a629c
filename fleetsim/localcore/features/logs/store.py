"""The logs tables (`log_groups`, `log_streams`, `log_events`); `LogsService` is the only
caller. Events are written in batches (`executemany`) and read by index range scans on
(stream or group, timestamp, id)."""

from __future__ import annotations

from collections.abc import Sequence

from fleetsim.localcore.db import Database, columns
from fleetsim.localcore.features.logs.records import LogEvent, LogGroup, LogStream

_GROUP = ("SELECT g.id, g.region, g.name, g.created, g.retention_days, "
          "(SELECT COALESCE(SUM(s.stored_bytes), 0) FROM log_streams s WHERE s.group_id = g.id)"
          " AS stored_bytes FROM log_groups g")
_STREAM = ("SELECT id, group_id, name, created, first_event, last_event, last_ingestion, "
           "stored_bytes FROM log_streams")
_STREAM_ORDER = {("LogStreamName", False): "name",
                 ("LogStreamName", True): "name DESC",
                 ("LastEventTime", False): "COALESCE(last_event, 0), name",
                 ("LastEventTime", True): "COALESCE(last_event, 0) DESC, name DESC"}
Position = tuple[int, int]


class LogsStore:
    def __init__(self, db: Database):
        self._db = db

    # --- groups ------------------------------------------------------------------------------

    def group(self, region: str, name: str) -> LogGroup | None:
        row = self._db.one(f"{_GROUP} WHERE g.region = ? AND g.name = ?", (region, name))
        return LogGroup(**columns(row)) if row else None

    def groups(self, region: str, prefix: str, contains: str, after: str,
               limit: int) -> list[LogGroup]:
        rows = self._db.query(
            f"{_GROUP} WHERE g.region = ? AND substr(g.name, 1, ?) = ? AND "
            "instr(lower(g.name), lower(?)) > 0 AND g.name > ? ORDER BY g.name LIMIT ?",
            (region, len(prefix), prefix, contains, after, limit))
        return [LogGroup(**columns(r)) for r in rows]

    def add_group(self, region: str, name: str, created: int) -> int:
        return int(self._db.write("INSERT INTO log_groups (region, name, created) "
                                  "VALUES (?, ?, ?)", (region, name, created)).lastrowid or 0)

    def set_retention(self, group_id: int, days: int | None) -> None:
        self._db.write("UPDATE log_groups SET retention_days = ? WHERE id = ?", (days, group_id))

    def delete_group(self, group_id: int) -> None:
        self._db.write("DELETE FROM log_events WHERE group_id = ?", (group_id,))
        self._db.write("DELETE FROM log_streams WHERE group_id = ?", (group_id,))
        self._db.write("DELETE FROM log_groups WHERE id = ?", (group_id,))

    def expire(self, group_id: int, before: int) -> None:
        """Drop the group's events older than `before` (its retention)."""
        self._db.write("DELETE FROM log_events WHERE group_id = ? AND timestamp < ?",
                       (group_id, before))

    def retained_groups(self) -> list[tuple[int, int]]:
        return [(r[0], r[1]) for r in self._db.query(
            "SELECT id, retention_days FROM log_groups WHERE retention_days IS NOT NULL")]

    # --- streams -----------------------------------------------------------------------------

    def stream(self, group_id: int, name: str) -> LogStream | None:
        row = self._db.one(f"{_STREAM} WHERE group_id = ? AND name = ?", (group_id, name))
        return LogStream(**columns(row)) if row else None

    def streams(self, group_id: int, prefix: str, order_by: str, descending: bool,
                offset: int, limit: int) -> list[LogStream]:
        rows = self._db.query(
            f"{_STREAM} WHERE group_id = ? AND substr(name, 1, ?) = ? "
            f"ORDER BY {_STREAM_ORDER[order_by, descending]} LIMIT ? OFFSET ?",
            (group_id, len(prefix), prefix, limit, offset))
        return [LogStream(**columns(r)) for r in rows]

    def stream_ids(self, group_id: int, names: Sequence[str] | None, prefix: str
                   ) -> dict[int, str]:
        if names is not None:
            marks = ",".join("?" * len(names))
            rows = self._db.query(f"SELECT id, name FROM log_streams WHERE group_id = ? AND "
                                  f"name IN ({marks})", (group_id, *names))
        else:
            rows = self._db.query("SELECT id, name FROM log_streams WHERE group_id = ? AND "
                                  "substr(name, 1, ?) = ?", (group_id, len(prefix), prefix))
        return {r[0]: r[1] for r in rows}

    def add_stream(self, group_id: int, name: str, created: int) -> int:
        return int(self._db.write("INSERT INTO log_streams (group_id, name, created) "
                                  "VALUES (?, ?, ?)", (group_id, name, created)).lastrowid or 0)

    def delete_stream(self, stream_id: int) -> None:
        self._db.write("DELETE FROM log_events WHERE stream_id = ?", (stream_id,))
        self._db.write("DELETE FROM log_streams WHERE id = ?", (stream_id,))

    # --- events ------------------------------------------------------------------------------

    def append(self, group_id: int, stream_id: int, events: Sequence[tuple[int, str]],
               ingestion: int) -> None:
        """Store `events` ((timestamp ms, message), in order) in one statement, and the
        stream's first/last event times and stored bytes."""
        self._db.write_many(
            "INSERT INTO log_events (group_id, stream_id, timestamp, ingestion, message) "
            "VALUES (?, ?, ?, ?, ?)",
            [(group_id, stream_id, t, ingestion, m) for t, m in events])
        times = [t for t, _ in events]
        self._db.write(
            "UPDATE log_streams SET first_event = MIN(COALESCE(first_event, ?), ?), "
            "last_event = MAX(COALESCE(last_event, ?), ?), last_ingestion = ?, "
            "stored_bytes = stored_bytes + ? WHERE id = ?",
            (min(times), min(times), max(times), max(times), ingestion,
             sum(len(m) for _, m in events), stream_id))

    def read_stream(self, stream_id: int, start: int, end: int, cursor: Position,
                    forward: bool, limit: int) -> list[LogEvent]:
        """Events of a stream in [start, end) after (forward) or before `cursor`, nearest
        first, at most `limit`."""
        direction = ">" if forward else "<"
        order = "" if forward else " DESC"
        rows = self._db.query(
            "SELECT id, '' AS stream_name, timestamp, ingestion, message FROM log_events "
            "WHERE stream_id = ? AND timestamp >= ? AND timestamp < ? AND "
            f"(timestamp, id) {direction} (?, ?) ORDER BY timestamp{order}, id{order} LIMIT ?",
            (stream_id, start, end, *cursor, limit))
        return [LogEvent(**columns(r)) for r in rows]

    def scan_group(self, group_id: int, streams: Sequence[int] | None, start: int, end: int,
                   after: Position, required: Sequence[str], limit: int
                   ) -> list[tuple[int, int, int, int, str]]:
        """(id, stream_id, timestamp, ingestion, message) of the group's events in
        [start, end) after `after`, in time order, whose message contains every one of
        `required`, at most `limit`."""
        sql = ("SELECT id, stream_id, timestamp, ingestion, message FROM log_events "
               "WHERE group_id = ? AND timestamp >= ? AND timestamp < ? AND "
               "(timestamp, id) > (?, ?)")
        args: list[object] = [group_id, start, end, *after]
        if streams is not None:
            sql += f" AND stream_id IN ({','.join('?' * len(streams))})"
            args += streams
        for text in required:
            sql += " AND instr(message, ?) > 0"
            args.append(text)
        sql += " ORDER BY timestamp, id LIMIT ?"
        args.append(limit)
        return [(r[0], r[1], r[2], r[3], r[4]) for r in self._db.query(sql, args)]
