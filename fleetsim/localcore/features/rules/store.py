"""The `topic_rules` table; `RulesService` is its only caller."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fleetsim.localcore.db import Database

_COLUMNS = "name, payload, topic_filter, disabled, created, tags"


@dataclass(frozen=True)
class RuleRow:
    name: str
    payload: dict[str, Any]  # the TopicRulePayload, as given (ruleDisabled as stored)
    topic_filter: str
    disabled: bool
    created: float
    tags: str | None


def _row(r: Any) -> RuleRow:
    return RuleRow(r["name"], json.loads(r["payload"]), r["topic_filter"], bool(r["disabled"]),
                   r["created"], r["tags"])


class RulesStore:
    def __init__(self, db: Database):
        self._db = db

    def get(self, region: str, name: str) -> RuleRow | None:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM topic_rules WHERE region = ? AND name = ?",
                              (region, name))
        return _row(rows[0]) if rows else None

    def insert(self, region: str, row: RuleRow) -> bool:
        """False if a rule of that name exists."""
        cur = self._db.write(
            f"INSERT OR IGNORE INTO topic_rules (region, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (region, row.name, json.dumps(row.payload), row.topic_filter, int(row.disabled),
             row.created, row.tags))
        return cur.rowcount == 1

    def replace(self, region: str, name: str, payload: dict[str, Any], topic_filter: str,
                disabled: bool) -> bool:
        cur = self._db.write(
            "UPDATE topic_rules SET payload = ?, topic_filter = ?, disabled = ? "
            "WHERE region = ? AND name = ?",
            (json.dumps(payload), topic_filter, int(disabled), region, name))
        return cur.rowcount == 1

    def set_disabled(self, region: str, name: str, disabled: bool) -> bool:
        cur = self._db.write("UPDATE topic_rules SET disabled = ? WHERE region = ? AND name = ?",
                             (int(disabled), region, name))
        return cur.rowcount == 1

    def delete(self, region: str, name: str) -> bool:
        cur = self._db.write("DELETE FROM topic_rules WHERE region = ? AND name = ?",
                             (region, name))
        return cur.rowcount == 1

    def page(self, region: str, after: str, limit: int, topic: str | None,
             disabled: bool | None) -> list[RuleRow]:
        """Rules after `after` in name order matching the filters, at most limit + 1."""
        where: list[str] = ["region = ?", "name > ?"]
        args: list[Any] = [region, after]
        if topic is not None:
            where.append("topic_filter = ?")
            args.append(topic)
        if disabled is not None:
            where.append("disabled = ?")
            args.append(int(disabled))
        rows = self._db.query(f"SELECT {_COLUMNS} FROM topic_rules WHERE {' AND '.join(where)} "
                              "ORDER BY name LIMIT ?", (*args, limit + 1))
        return [_row(r) for r in rows]

    def enabled(self, region: str) -> list[RuleRow]:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM topic_rules WHERE region = ? "
                              "AND disabled = 0", (region,))
        return [_row(r) for r in rows]
