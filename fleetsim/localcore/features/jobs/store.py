"""The jobs feature's tables: jobs, job_targets, job_executions, job_templates. Only
`JobsService` uses this module."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from fleetsim.localcore.db import Database, columns
from fleetsim.localcore.features.jobs.records import ExecutionRecord, JobRecord, TemplateRecord

_JSON_JOB = ("targets", "config", "tags")
_EXEC_COLS = ("region, job_id, thing_name, execution_number, status, status_details, "
              "queued_at, started_at, updated_at, version, retry_attempt, step_started, "
              "step_minutes, timeout_at, force_canceled, seq")


def _job(row: sqlite3.Row, waiting: bool = False) -> JobRecord:
    d = columns(row)
    for name in _JSON_JOB:
        d[name] = json.loads(d[name])
    d["rollout_state"] = json.loads(d["rollout_state"]) if d["rollout_state"] else None
    d["force_canceled"] = bool(d["force_canceled"])
    return JobRecord(**d, targets_waiting=waiting)


def _execution(row: sqlite3.Row) -> ExecutionRecord:
    d = columns(row)
    d["status_details"] = json.loads(d["status_details"])
    d["force_canceled"] = bool(d["force_canceled"])
    return ExecutionRecord(**d)


def _template(row: sqlite3.Row) -> TemplateRecord:
    d = columns(row)
    d["config"] = json.loads(d["config"])
    d.pop("tags")
    return TemplateRecord(**d)


class JobsStore:
    def __init__(self, db: Database):
        self.db = db
        self._last_seq: int | None = None  # of job_executions

    # --- jobs --------------------------------------------------------------------------------

    def job(self, region: str, job_id: str) -> JobRecord | None:
        row = self.db.one("SELECT * FROM jobs WHERE region = ? AND job_id = ?", (region, job_id))
        return None if row is None else _job(row, self.has_targets(region, job_id))

    def insert_job(self, job: JobRecord) -> None:
        seq = self.db.one("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs")[0]  # type: ignore[index]
        job.seq = seq
        self.db.write(
            "INSERT INTO jobs (region, job_id, seq, arn, status, target_selection, targets, "
            "description, document, document_source, config, template_arn, tags, reason_code, "
            "comment, force_canceled, created, updated, completed, rollout_state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.region, job.job_id, seq, job.arn, job.status, job.target_selection,
             json.dumps(job.targets), job.description, job.document, job.document_source,
             json.dumps(job.config), job.template_arn, json.dumps(job.tags), job.reason_code,
             job.comment, int(job.force_canceled), job.created, job.updated, job.completed,
             json.dumps(job.rollout_state) if job.rollout_state else None))

    def save_job(self, job: JobRecord) -> None:
        self.db.write(
            "UPDATE jobs SET status = ?, description = ?, config = ?, reason_code = ?, "
            "comment = ?, force_canceled = ?, updated = ?, completed = ?, rollout_state = ? "
            "WHERE region = ? AND job_id = ?",
            (job.status, job.description, json.dumps(job.config), job.reason_code, job.comment,
             int(job.force_canceled), job.updated, job.completed,
             json.dumps(job.rollout_state) if job.rollout_state else None, job.region,
             job.job_id))

    def delete_job(self, region: str, job_id: str) -> None:
        for table in ("jobs", "job_targets", "job_executions"):
            self.db.write(f"DELETE FROM {table} WHERE region = ? AND job_id = ?",
                          (region, job_id))

    def jobs(self, region: str, after: int, limit: int, where: Iterable[str] = (),
             args: Iterable[Any] = ()) -> list[JobRecord]:
        conditions = " AND ".join(("region = ?", "seq > ?", *where))
        rows = self.db.query(f"SELECT * FROM jobs WHERE {conditions} ORDER BY seq LIMIT ?",
                             (region, after, *args, limit))
        return [_job(r) for r in rows]

    def jobs_in(self, *statuses: str) -> list[JobRecord]:
        marks = ", ".join("?" * len(statuses))
        rows = self.db.query(f"SELECT * FROM jobs WHERE status IN ({marks})", statuses)
        return [_job(r, self.has_targets(r["region"], r["job_id"])) for r in rows]

    # --- targets waiting for their execution -------------------------------------------------

    def add_targets(self, region: str, job_id: str, things: Iterable[str]) -> int:
        rows = [(region, job_id, i, t) for i, t in enumerate(things)]
        self.db.write_many("INSERT INTO job_targets (region, job_id, position, thing_name) "
                           "VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def has_targets(self, region: str, job_id: str) -> bool:
        """Whether targets of the job wait for their execution."""
        return self.db.one("SELECT 1 FROM job_targets WHERE region = ? AND job_id = ? LIMIT 1",
                           (region, job_id)) is not None

    def take_targets(self, region: str, job_id: str, limit: int) -> list[str]:
        rows = self.db.query("SELECT position, thing_name FROM job_targets WHERE region = ? "
                             "AND job_id = ? ORDER BY position LIMIT ?", (region, job_id, limit))
        if rows:
            self.db.write("DELETE FROM job_targets WHERE region = ? AND job_id = ? AND "
                          "position <= ?", (region, job_id, rows[-1]["position"]))
        return [r["thing_name"] for r in rows]

    def drop_targets(self, region: str, job_id: str) -> None:
        self.db.write("DELETE FROM job_targets WHERE region = ? AND job_id = ?",
                      (region, job_id))

    # --- executions --------------------------------------------------------------------------

    def execution(self, region: str, job_id: str, thing: str) -> ExecutionRecord | None:
        row = self.db.one(f"SELECT {_EXEC_COLS} FROM job_executions WHERE region = ? AND "
                          "job_id = ? AND thing_name = ?", (region, job_id, thing))
        return None if row is None else _execution(row)

    def save_execution(self, e: ExecutionRecord) -> None:
        if not e.seq:
            if self._last_seq is None:  # once: the store is the only writer of the table
                row = self.db.one("SELECT COALESCE(MAX(seq), 0) FROM job_executions")
                self._last_seq = int(row[0]) if row else 0
            self._last_seq += 1
            e.seq = self._last_seq
        self.db.write(
            f"INSERT OR REPLACE INTO job_executions ({_EXEC_COLS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.region, e.job_id, e.thing_name, e.execution_number, e.status,
             json.dumps(e.status_details), e.queued_at, e.started_at, e.updated_at, e.version,
             e.retry_attempt, e.step_started, e.step_minutes, e.timeout_at,
             int(e.force_canceled), e.seq))

    def delete_execution(self, region: str, job_id: str, thing: str) -> None:
        self.db.write("DELETE FROM job_executions WHERE region = ? AND job_id = ? AND "
                      "thing_name = ?", (region, job_id, thing))

    def executions_of_thing(self, region: str, thing: str,
                            statuses: tuple[str, ...] = ()) -> list[ExecutionRecord]:
        where, args = "", statuses
        if statuses:
            where = f" AND status IN ({', '.join('?' * len(statuses))})"
        rows = self.db.query(f"SELECT {_EXEC_COLS} FROM job_executions WHERE region = ? AND "
                             f"thing_name = ?{where} ORDER BY seq", (region, thing, *args))
        return [_execution(r) for r in rows]

    def executions_of_job(self, region: str, job_id: str, after: int, limit: int,
                          status: str | None = None) -> list[ExecutionRecord]:
        where, args = ("AND status = ? ", (status,)) if status else ("", ())
        rows = self.db.query(f"SELECT {_EXEC_COLS} FROM job_executions WHERE region = ? AND "
                             f"job_id = ? AND seq > ? {where}ORDER BY seq LIMIT ?",
                             (region, job_id, after, *args, limit))
        return [_execution(r) for r in rows]

    def counts(self, region: str, job_id: str) -> dict[str, int]:
        rows = self.db.query("SELECT status, COUNT(*) FROM job_executions WHERE region = ? AND "
                             "job_id = ? GROUP BY status", (region, job_id))
        return {r[0]: int(r[1]) for r in rows}

    def has_pending_execution(self, region: str, job_id: str) -> bool:
        """Whether an execution of the job is QUEUED or IN_PROGRESS."""
        return self.db.one("SELECT 1 FROM job_executions WHERE region = ? AND job_id = ? AND "
                           "status IN ('QUEUED', 'IN_PROGRESS') LIMIT 1",
                           (region, job_id)) is not None

    def timed(self) -> list[ExecutionRecord]:
        """Executions with a running timer (to re-arm at start)."""
        rows = self.db.query(f"SELECT {_EXEC_COLS} FROM job_executions "
                             "WHERE timeout_at IS NOT NULL")
        return [_execution(r) for r in rows]

    # --- templates ---------------------------------------------------------------------------

    def template(self, region: str, template_id: str) -> TemplateRecord | None:
        row = self.db.one("SELECT * FROM job_templates WHERE region = ? AND template_id = ?",
                          (region, template_id))
        return None if row is None else _template(row)

    def insert_template(self, t: TemplateRecord, tags: list[dict[str, str]]) -> None:
        self.db.write("INSERT INTO job_templates (region, template_id, arn, description, "
                      "document, document_source, config, tags, created) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (t.region, t.template_id, t.arn, t.description, t.document,
                       t.document_source, json.dumps(t.config), json.dumps(tags), t.created))

    def templates(self, region: str, after: str, limit: int) -> list[TemplateRecord]:
        rows = self.db.query("SELECT * FROM job_templates WHERE region = ? AND template_id > ? "
                             "ORDER BY template_id LIMIT ?", (region, after, limit))
        return [_template(r) for r in rows]

    def delete_template(self, region: str, template_id: str) -> None:
        self.db.write("DELETE FROM job_templates WHERE region = ? AND template_id = ?",
                      (region, template_id))
