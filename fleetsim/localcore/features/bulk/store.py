"""The bulk feature's tables: `registration_tasks` (one row per task) and
`registration_task_lines` (the report line of every input offset processed, RESULTS or ERRORS;
a resumed task skips the offsets it has). Only `BulkService` uses this module."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsim.localcore.db import Database, columns

_COLUMNS = ("task_id, account_id, region, status, template_body, input_bucket, input_key, "
            "role_arn, created, last_modified, total, success_count, failure_count, message")


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    account_id: str
    region: str
    status: str
    template_body: str
    input_bucket: str
    input_key: str
    role_arn: str
    created: float
    last_modified: float
    total: int | None
    success_count: int
    failure_count: int
    message: str | None


class TaskStore:
    def __init__(self, db: Database):
        self.db = db

    def task(self, task_id: str) -> TaskRow | None:
        row = self.db.one(f"SELECT {_COLUMNS} FROM registration_tasks WHERE task_id = ?",
                          (task_id,))
        return None if row is None else TaskRow(**columns(row))

    def tasks_in(self, *statuses: str) -> list[TaskRow]:
        marks = ", ".join("?" * len(statuses))
        rows = self.db.query(f"SELECT {_COLUMNS} FROM registration_tasks "
                             f"WHERE status IN ({marks}) ORDER BY created", statuses)
        return [TaskRow(**columns(r)) for r in rows]

    def task_ids(self, region: str, status: str | None) -> list[str]:
        """Newest first."""
        sql = "SELECT task_id FROM registration_tasks WHERE region = ?"
        args: tuple[str, ...] = (region,)
        if status:
            sql, args = sql + " AND status = ?", (*args, status)
        return [r[0] for r in self.db.query(sql + " ORDER BY created DESC, task_id", args)]

    def create(self, row: TaskRow) -> None:
        with self.db.transaction() as db:
            db.write(f"INSERT INTO registration_tasks ({_COLUMNS}) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (row.task_id, row.account_id, row.region, row.status, row.template_body,
                      row.input_bucket, row.input_key, row.role_arn, row.created,
                      row.last_modified, row.total, row.success_count, row.failure_count,
                      row.message))

    def set_status(self, task_id: str, status: str, now: float, message: str | None = None
                   ) -> None:
        with self.db.transaction() as db:
            db.write("UPDATE registration_tasks SET status = ?, last_modified = ?, "
                     "message = COALESCE(?, message) WHERE task_id = ?",
                     (status, now, message, task_id))

    def set_total(self, task_id: str, total: int, now: float) -> None:
        with self.db.transaction() as db:
            db.write("UPDATE registration_tasks SET total = ?, last_modified = ? "
                     "WHERE task_id = ?", (total, now, task_id))

    def record_line(self, task_id: str, offset: int, report: str, line: str, now: float) -> None:
        """Store one report line and count it (joins the caller's transaction)."""
        counter = "success_count" if report == "RESULTS" else "failure_count"
        with self.db.transaction() as db:
            db.write("INSERT INTO registration_task_lines (task_id, line_offset, report, line) "
                     "VALUES (?, ?, ?, ?)", (task_id, offset, report, line))
            db.write(f"UPDATE registration_tasks SET {counter} = {counter} + 1, "
                     "last_modified = ? WHERE task_id = ?", (now, task_id))

    def done_offsets(self, task_id: str) -> set[int]:
        return {r[0] for r in self.db.query(
            "SELECT line_offset FROM registration_task_lines WHERE task_id = ?", (task_id,))}

    def lines(self, task_id: str, report: str) -> list[str]:
        return [r[0] for r in self.db.query(
            "SELECT line FROM registration_task_lines WHERE task_id = ? AND report = ? "
            "ORDER BY line_offset", (task_id, report))]
