"""The lambda feature's tables: `lambda_functions` (one row per function and region) and
`lambda_permissions` (the statements of its resource policy, in the order they were added).
Only `LambdaService` uses this module."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from fleetsim.localcore.db import Database, columns

_COLUMNS = ("region, name, runtime, role, handler, description, timeout, memory_size, "
            "environment, code_sha256, code_size, last_modified, revision_id")


@dataclass(frozen=True)
class FunctionRow:
    region: str
    name: str
    runtime: str
    role: str
    handler: str
    description: str
    timeout: int
    memory_size: int
    environment: dict[str, str] = field(hash=False)
    code_sha256: str  # hex
    code_size: int
    last_modified: float
    revision_id: str


def _row(row: object) -> FunctionRow:
    values = columns(row)  # type: ignore[arg-type]
    values["environment"] = json.loads(values["environment"])
    return FunctionRow(**values)


class FunctionStore:
    def __init__(self, db: Database):
        self.db = db

    def get(self, region: str, name: str) -> FunctionRow | None:
        row = self.db.one(f"SELECT {_COLUMNS} FROM lambda_functions "
                          "WHERE region = ? AND name = ?", (region, name))
        return None if row is None else _row(row)

    def page(self, region: str, after: str, limit: int) -> list[FunctionRow]:
        """Up to limit + 1 functions after `after` in name order."""
        rows = self.db.query(f"SELECT {_COLUMNS} FROM lambda_functions WHERE region = ? "
                             "AND name > ? ORDER BY name LIMIT ?", (region, after, limit + 1))
        return [_row(r) for r in rows]

    def save(self, f: FunctionRow) -> None:
        with self.db.transaction() as db:
            db.write(f"INSERT OR REPLACE INTO lambda_functions ({_COLUMNS}) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (f.region, f.name, f.runtime, f.role, f.handler, f.description, f.timeout,
                      f.memory_size, json.dumps(f.environment), f.code_sha256, f.code_size,
                      f.last_modified, f.revision_id))

    def delete(self, region: str, name: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM lambda_functions WHERE region = ? AND name = ?",
                     (region, name))
            db.write("DELETE FROM lambda_permissions WHERE region = ? AND function_name = ?",
                     (region, name))

    def code_in_use(self, sha256: str) -> bool:
        return self.db.one("SELECT 1 FROM lambda_functions WHERE code_sha256 = ? LIMIT 1",
                           (sha256,)) is not None

    def statements(self, region: str, name: str) -> list[dict[str, object]]:
        rows = self.db.query("SELECT statement FROM lambda_permissions WHERE region = ? AND "
                             "function_name = ? ORDER BY rowid", (region, name))
        return [json.loads(r[0]) for r in rows]

    def add_statement(self, region: str, name: str, sid: str, statement: dict[str, object]
                      ) -> bool:
        """False if the function already has a statement `sid`."""
        with self.db.transaction() as db:
            cursor = db.write("INSERT OR IGNORE INTO lambda_permissions "
                              "(region, function_name, sid, statement) VALUES (?, ?, ?, ?)",
                              (region, name, sid, json.dumps(statement, separators=(",", ":"))))
            return cursor.rowcount == 1

    def remove_statement(self, region: str, name: str, sid: str) -> bool:
        with self.db.transaction() as db:
            cursor = db.write("DELETE FROM lambda_permissions WHERE region = ? AND "
                              "function_name = ? AND sid = ?", (region, name, sid))
            return cursor.rowcount == 1
