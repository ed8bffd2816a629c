"""Version 5: S3 (bucket and object metadata; object bodies are files under the state
directory's `s3/`), multipart uploads, and bulk thing registration tasks with the report line
of every offset they have processed (so a task resumes after a restart where it stopped)."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE s3_buckets (
            name TEXT PRIMARY KEY, region TEXT NOT NULL, created REAL NOT NULL) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE s3_objects (
            bucket TEXT NOT NULL, key TEXT NOT NULL,
            size INTEGER NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL,
            metadata TEXT NOT NULL, last_modified REAL NOT NULL, blob TEXT NOT NULL,
            PRIMARY KEY (bucket, key)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE s3_uploads (
            upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
            content_type TEXT NOT NULL, metadata TEXT NOT NULL, created REAL NOT NULL
        ) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE s3_parts (
            upload_id TEXT NOT NULL, part_number INTEGER NOT NULL,
            size INTEGER NOT NULL, etag TEXT NOT NULL, blob TEXT NOT NULL,
            PRIMARY KEY (upload_id, part_number)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE registration_tasks (
            task_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, region TEXT NOT NULL,
            status TEXT NOT NULL, template_body TEXT NOT NULL,
            input_bucket TEXT NOT NULL, input_key TEXT NOT NULL, role_arn TEXT NOT NULL,
            created REAL NOT NULL, last_modified REAL NOT NULL,
            total INTEGER, success_count INTEGER NOT NULL DEFAULT 0,
            failure_count INTEGER NOT NULL DEFAULT 0, message TEXT) WITHOUT ROWID""")
    db.execute("CREATE INDEX registration_tasks_by_region "
               "ON registration_tasks (region, created)")
    db.execute("""
        CREATE TABLE registration_task_lines (
            task_id TEXT NOT NULL, line_offset INTEGER NOT NULL,
            report TEXT NOT NULL, line TEXT NOT NULL,
            PRIMARY KEY (task_id, line_offset)) WITHOUT ROWID""")
