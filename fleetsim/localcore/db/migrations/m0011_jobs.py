"""Version 6: IoT Jobs: jobs (their configuration and rollout state), the targets still waiting
for their execution, job executions (status, versions, timers) and job templates."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE jobs (
            region TEXT NOT NULL, job_id TEXT NOT NULL, seq INTEGER NOT NULL,
            arn TEXT NOT NULL, status TEXT NOT NULL, target_selection TEXT NOT NULL,
            targets TEXT NOT NULL, description TEXT, document TEXT NOT NULL,
            document_source TEXT, config TEXT NOT NULL, template_arn TEXT,
            tags TEXT NOT NULL, reason_code TEXT, comment TEXT,
            force_canceled INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
            updated REAL NOT NULL, completed REAL, rollout_state TEXT,
            PRIMARY KEY (region, job_id)) WITHOUT ROWID""")
    db.execute("CREATE INDEX jobs_by_seq ON jobs (region, seq)")
    db.execute("""
        CREATE TABLE job_targets (
            region TEXT NOT NULL, job_id TEXT NOT NULL, position INTEGER NOT NULL,
            thing_name TEXT NOT NULL,
            PRIMARY KEY (region, job_id, position)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE job_executions (
            region TEXT NOT NULL, job_id TEXT NOT NULL, thing_name TEXT NOT NULL,
            execution_number INTEGER NOT NULL, status TEXT NOT NULL,
            status_details TEXT NOT NULL, queued_at REAL NOT NULL, started_at REAL,
            updated_at REAL NOT NULL, version INTEGER NOT NULL,
            retry_attempt INTEGER NOT NULL DEFAULT 0, step_started REAL, step_minutes INTEGER,
            timeout_at REAL, force_canceled INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL,
            PRIMARY KEY (region, job_id, thing_name)) WITHOUT ROWID""")
    db.execute("CREATE INDEX job_executions_by_thing "
               "ON job_executions (region, thing_name, status)")
    db.execute("CREATE INDEX job_executions_by_job ON job_executions (region, job_id, seq)")
    db.execute("CREATE INDEX job_executions_by_status "
               "ON job_executions (region, job_id, status)")
    db.execute("CREATE INDEX job_executions_timing ON job_executions (timeout_at) "
               "WHERE timeout_at IS NOT NULL")
    db.execute("""
        CREATE TABLE job_templates (
            region TEXT NOT NULL, template_id TEXT NOT NULL, arn TEXT NOT NULL,
            description TEXT NOT NULL, document TEXT, document_source TEXT,
            config TEXT NOT NULL, tags TEXT NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (region, template_id)) WITHOUT ROWID""")
