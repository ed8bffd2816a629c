"""The provisioning feature's tables: `provisioning_templates`, their versions and the
certificate ownership tokens of fleet provisioning. `ProvisioningService` is the only caller."""

from __future__ import annotations

import json
import sqlite3

from fleetsim.localcore.db import Database
from fleetsim.localcore.features.provisioning.records import (
    TemplateRecord,
    TemplateVersionRecord,
)

_TEMPLATE = ("region, name, description, enabled, role_arn, hook, type, default_version, "
             "next_version, created, modified")


def _template(row: sqlite3.Row) -> TemplateRecord:
    return TemplateRecord(row["region"], row["name"], row["description"], bool(row["enabled"]),
                          row["role_arn"], json.loads(row["hook"]) if row["hook"] else None,
                          row["type"], row["default_version"], row["next_version"],
                          row["created"], row["modified"])


class ProvisioningStore:
    def __init__(self, db: Database):
        self._db = db

    # --- templates ---------------------------------------------------------------------------

    def get_template(self, region: str, name: str) -> TemplateRecord | None:
        row = self._db.one(f"SELECT {_TEMPLATE} FROM provisioning_templates "
                           "WHERE region = ? AND name = ?", (region, name))
        return _template(row) if row else None

    def put_template(self, rec: TemplateRecord) -> None:
        self._db.write(
            f"INSERT OR REPLACE INTO provisioning_templates ({_TEMPLATE}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.region, rec.name, rec.description, int(rec.enabled), rec.role_arn,
             json.dumps(rec.hook) if rec.hook else None, rec.type, rec.default_version,
             rec.next_version, rec.created, rec.modified))

    def delete_template(self, region: str, name: str) -> None:
        self._db.write("DELETE FROM provisioning_templates WHERE region = ? AND name = ?",
                       (region, name))
        self._db.write("DELETE FROM provisioning_template_versions "
                       "WHERE region = ? AND template_name = ?", (region, name))

    def list_templates(self, region: str, after: str, limit: int
                       ) -> tuple[list[TemplateRecord], str | None]:
        rows = self._db.query(f"SELECT {_TEMPLATE} FROM provisioning_templates "
                              "WHERE region = ? AND name > ? ORDER BY name LIMIT ?",
                              (region, after, limit + 1))
        page = [_template(r) for r in rows[:limit]]
        return page, (page[-1].name if len(rows) > limit else None)

    # --- versions ----------------------------------------------------------------------------

    def add_version(self, region: str, name: str, version_id: int, body: str,
                    created: float) -> None:
        self._db.write("INSERT INTO provisioning_template_versions (region, template_name, "
                       "version_id, body, created) VALUES (?, ?, ?, ?, ?)",
                       (region, name, version_id, body, created))

    def versions(self, template: TemplateRecord) -> list[TemplateVersionRecord]:
        rows = self._db.query("SELECT version_id, body, created FROM "
                              "provisioning_template_versions WHERE region = ? AND "
                              "template_name = ? ORDER BY version_id",
                              (template.region, template.name))
        return [TemplateVersionRecord(template.name, r["version_id"], r["body"], r["created"],
                                      r["version_id"] == template.default_version)
                for r in rows]

    def delete_version(self, region: str, name: str, version_id: int) -> None:
        self._db.write("DELETE FROM provisioning_template_versions WHERE region = ? AND "
                       "template_name = ? AND version_id = ?", (region, name, version_id))

    # --- certificate ownership tokens --------------------------------------------------------

    def add_token(self, token: str, region: str, certificate_id: str, expires: float) -> None:
        self._db.write("INSERT INTO certificate_ownership_tokens (token, region, "
                       "certificate_id, expires) VALUES (?, ?, ?, ?)",
                       (token, region, certificate_id, expires))

    def token(self, token: str) -> tuple[str, str, float] | None:
        """(region, certificate id, expiry) of a token."""
        row = self._db.one("SELECT region, certificate_id, expires FROM "
                           "certificate_ownership_tokens WHERE token = ?", (token,))
        return (row[0], row[1], row[2]) if row else None

    def delete_token(self, token: str) -> None:
        self._db.write("DELETE FROM certificate_ownership_tokens WHERE token = ?", (token,))

    def expired_tokens(self, now: float) -> list[tuple[str, str, str]]:
        """(token, region, certificate id) of every token expired at `now`."""
        rows = self._db.query("SELECT token, region, certificate_id FROM "
                              "certificate_ownership_tokens WHERE expires <= ?", (now,))
        return [(r[0], r[1], r[2]) for r in rows]
