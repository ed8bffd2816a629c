"""The logging feature's tables: iot_logging_options (v1 and v2 per region) and
iot_logging_levels (v2, per target). Only `LoggingService` uses this module."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsim.localcore.db import Database


@dataclass(frozen=True)
class Options:
    role_arn: str | None
    log_level: str | None
    disable_all: bool = False


class LoggingStore:
    def __init__(self, db: Database):
        self.db = db

    def options(self, region: str, version: str) -> Options | None:
        row = self.db.one("SELECT role_arn, log_level, disable_all FROM iot_logging_options "
                          "WHERE region = ? AND version = ?", (region, version))
        if row is None:
            return None
        return Options(row["role_arn"], row["log_level"], bool(row["disable_all"]))

    def save_options(self, region: str, version: str, options: Options) -> None:
        with self.db.transaction() as db:
            db.write("INSERT OR REPLACE INTO iot_logging_options(region, version, role_arn, "
                     "log_level, disable_all) VALUES (?, ?, ?, ?, ?)",
                     (region, version, options.role_arn, options.log_level,
                      int(options.disable_all)))

    def levels(self, region: str) -> dict[tuple[str, str], str]:
        rows = self.db.query("SELECT target_type, target_name, log_level FROM "
                             "iot_logging_levels WHERE region = ? ORDER BY target_type, "
                             "target_name", (region,))
        return {(r["target_type"], r["target_name"]): r["log_level"] for r in rows}

    def set_level(self, region: str, target_type: str, name: str, level: str) -> None:
        with self.db.transaction() as db:
            db.write("INSERT OR REPLACE INTO iot_logging_levels(region, target_type, "
                     "target_name, log_level) VALUES (?, ?, ?, ?)",
                     (region, target_type, name, level))

    def delete_level(self, region: str, target_type: str, name: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM iot_logging_levels WHERE region = ? AND target_type = ? AND "
                     "target_name = ?", (region, target_type, name))
