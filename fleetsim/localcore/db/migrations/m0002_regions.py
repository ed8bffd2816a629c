"""Version 2: resources are regional, as on AWS. Every registry table gains a `region` column
in its keys (rows of version 1 get the configured default region); the registration code and
the event configuration, kept in `meta` until now, get tables of their own, one row per
region."""

from __future__ import annotations

import json
import sqlite3

# table -> (new definition, indexes, columns copied from version 1)
_TABLES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "thing_types": (
        "region TEXT NOT NULL, name TEXT NOT NULL, type_id TEXT NOT NULL, description TEXT, "
        "searchable_attributes TEXT NOT NULL DEFAULT '[]', deprecated INTEGER NOT NULL DEFAULT 0, "
        "deprecation_date REAL, created REAL NOT NULL, PRIMARY KEY (region, name)",
        (),
        "name, type_id, description, searchable_attributes, deprecated, deprecation_date, "
        "created"),
    "things": (
        "seq INTEGER PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, "
        "thing_id TEXT NOT NULL, type_name TEXT, attributes TEXT NOT NULL DEFAULT '{}', "
        "version INTEGER NOT NULL, billing_group TEXT, created REAL NOT NULL, "
        "UNIQUE (region, name)",
        ("CREATE INDEX things_type ON things(region, type_name) WHERE type_name IS NOT NULL",),
        "seq, name, thing_id, type_name, attributes, version, billing_group, created"),
    "thing_groups": (
        "seq INTEGER PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, "
        "group_id TEXT NOT NULL, parent_name TEXT, description TEXT, "
        "attributes TEXT NOT NULL DEFAULT '{}', version INTEGER NOT NULL, created REAL NOT NULL, "
        "query_string TEXT, UNIQUE (region, name)",
        ("CREATE INDEX thing_groups_parent ON thing_groups(region, parent_name)",),
        "seq, name, group_id, parent_name, description, attributes, version, created, "
        "query_string"),
    "thing_group_members": (
        "region TEXT NOT NULL, group_name TEXT NOT NULL, thing_name TEXT NOT NULL, "
        "membership_id TEXT NOT NULL, added REAL NOT NULL, "
        "PRIMARY KEY (region, group_name, thing_name)",
        ("CREATE INDEX thing_group_members_thing ON thing_group_members(region, thing_name)",),
        "group_name, thing_name, membership_id, added"),
    "thing_principals": (
        "region TEXT NOT NULL, principal TEXT NOT NULL, thing_name TEXT NOT NULL, "
        "principal_type TEXT NOT NULL, attached REAL NOT NULL, "
        "PRIMARY KEY (region, principal, thing_name)",
        ("CREATE INDEX thing_principals_thing ON thing_principals(region, thing_name)",),
        "principal, thing_name, principal_type, attached"),
    "ca_certificates": (
        "seq INTEGER PRIMARY KEY, region TEXT NOT NULL, id TEXT NOT NULL, pem TEXT NOT NULL, "
        "status TEXT NOT NULL, auto_registration TEXT NOT NULL, registration_config TEXT, "
        "mode TEXT NOT NULL, created REAL NOT NULL, last_modified REAL NOT NULL, "
        "customer_version INTEGER NOT NULL, generation_id TEXT NOT NULL, not_before REAL, "
        "not_after REAL, UNIQUE (region, id)",
        (),
        "seq, id, pem, status, auto_registration, registration_config, mode, created, "
        "last_modified, customer_version, generation_id, not_before, not_after"),
    "certificates": (
        "seq INTEGER PRIMARY KEY, region TEXT NOT NULL, id TEXT NOT NULL, pem TEXT NOT NULL, "
        "status TEXT NOT NULL, ca_id TEXT, mode TEXT NOT NULL, subject_cn TEXT, "
        "created REAL NOT NULL, last_modified REAL NOT NULL, customer_version INTEGER NOT NULL, "
        "generation_id TEXT NOT NULL, not_before REAL, not_after REAL, UNIQUE (region, id)",
        ("CREATE INDEX certificates_ca ON certificates(region, ca_id) WHERE ca_id IS NOT NULL",),
        "seq, id, pem, status, ca_id, mode, subject_cn, created, last_modified, "
        "customer_version, generation_id, not_before, not_after"),
    "policies": (
        "seq INTEGER PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, "
        "default_version INTEGER NOT NULL, next_version INTEGER NOT NULL, "
        "created REAL NOT NULL, last_modified REAL NOT NULL, generation_id TEXT NOT NULL, "
        "UNIQUE (region, name)",
        (),
        "seq, name, default_version, next_version, created, last_modified, generation_id"),
    "policy_versions": (
        "region TEXT NOT NULL, policy_name TEXT NOT NULL, version INTEGER NOT NULL, "
        "document TEXT NOT NULL, created REAL NOT NULL, "
        "PRIMARY KEY (region, policy_name, version)",
        (),
        "policy_name, version, document, created"),
    "policy_targets": (
        "region TEXT NOT NULL, target TEXT NOT NULL, policy_name TEXT NOT NULL, "
        "attached REAL NOT NULL, PRIMARY KEY (region, target, policy_name)",
        ("CREATE INDEX policy_targets_policy ON policy_targets(region, policy_name)",),
        "target, policy_name, attached"),
}
_WITHOUT_ROWID = {"thing_types", "thing_group_members", "thing_principals", "policy_versions",
                  "policy_targets"}


def _rebuild(db: sqlite3.Connection, table: str, default_region: str) -> None:
    definition, indexes, columns = _TABLES[table]
    for (index,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                               "tbl_name = ? AND sql IS NOT NULL", (table,)).fetchall():
        db.execute(f"DROP INDEX {index}")
    db.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
    suffix = " WITHOUT ROWID" if table in _WITHOUT_ROWID else ""
    db.execute(f"CREATE TABLE {table} ({definition}){suffix}")
    db.execute(f"INSERT INTO {table}(region, {columns}) SELECT ?, {columns} FROM {table}_v1",
               (default_region,))
    db.execute(f"DROP TABLE {table}_v1")
    for index in indexes:
        db.execute(index)


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    for table in _TABLES:
        _rebuild(db, table, default_region)
    db.execute("CREATE TABLE registration_codes (region TEXT PRIMARY KEY, code TEXT NOT NULL)")
    db.execute("CREATE TABLE event_configurations (region TEXT PRIMARY KEY, "
               "enabled TEXT NOT NULL, created REAL NOT NULL, last_modified REAL NOT NULL)")
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                           "('registration_code', 'event_configurations')").fetchall())
    if "registration_code" in meta:
        db.execute("INSERT INTO registration_codes(region, code) VALUES (?, ?)",
                   (default_region, meta["registration_code"]))
    if "event_configurations" in meta:
        config = json.loads(meta["event_configurations"])
        db.execute("INSERT INTO event_configurations(region, enabled, created, last_modified) "
                   "VALUES (?, ?, ?, ?)", (default_region, json.dumps(config["enabled"]),
                                           config["created"], config["last_modified"]))
    db.execute("DELETE FROM meta WHERE key IN ('registration_code', 'event_configurations')")
