"""Version 1: the schema of the first release (one registry, every resource in the configured
region, event configuration and registration code in `meta`)."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS thing_types (
    name TEXT PRIMARY KEY, type_id TEXT NOT NULL, description TEXT,
    searchable_attributes TEXT NOT NULL DEFAULT '[]', deprecated INTEGER NOT NULL DEFAULT 0,
    deprecation_date REAL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS things (
    seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, thing_id TEXT NOT NULL,
    type_name TEXT, attributes TEXT NOT NULL DEFAULT '{}', version INTEGER NOT NULL,
    billing_group TEXT, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS things_type ON things(type_name) WHERE type_name IS NOT NULL;
CREATE TABLE IF NOT EXISTS thing_attributes (
    thing_seq INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (thing_seq, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thing_attributes_nv ON thing_attributes(name, value, thing_seq);
CREATE TABLE IF NOT EXISTS thing_groups (
    seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, group_id TEXT NOT NULL,
    parent_name TEXT, description TEXT, attributes TEXT NOT NULL DEFAULT '{}',
    version INTEGER NOT NULL, created REAL NOT NULL, query_string TEXT);
CREATE INDEX IF NOT EXISTS thing_groups_parent ON thing_groups(parent_name);
CREATE TABLE IF NOT EXISTS thing_group_members (
    group_name TEXT NOT NULL, thing_name TEXT NOT NULL, membership_id TEXT NOT NULL,
    added REAL NOT NULL, PRIMARY KEY (group_name, thing_name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thing_group_members_thing ON thing_group_members(thing_name);
CREATE TABLE IF NOT EXISTS ca_certificates (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, pem TEXT NOT NULL, status TEXT NOT NULL,
    auto_registration TEXT NOT NULL, registration_config TEXT, mode TEXT NOT NULL,
    created REAL NOT NULL, last_modified REAL NOT NULL, customer_version INTEGER NOT NULL,
    generation_id TEXT NOT NULL, not_before REAL, not_after REAL);
CREATE TABLE IF NOT EXISTS certificates (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, pem TEXT NOT NULL, status TEXT NOT NULL,
    ca_id TEXT, mode TEXT NOT NULL, subject_cn TEXT, created REAL NOT NULL,
    last_modified REAL NOT NULL, customer_version INTEGER NOT NULL, generation_id TEXT NOT NULL,
    not_before REAL, not_after REAL);
CREATE INDEX IF NOT EXISTS certificates_ca ON certificates(ca_id) WHERE ca_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS policies (
    seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, default_version INTEGER NOT NULL,
    next_version INTEGER NOT NULL, created REAL NOT NULL, last_modified REAL NOT NULL,
    generation_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policy_versions (
    policy_name TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (policy_name, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_targets (
    target TEXT NOT NULL, policy_name TEXT NOT NULL, attached REAL NOT NULL,
    PRIMARY KEY (target, policy_name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS policy_targets_policy ON policy_targets(policy_name);
CREATE TABLE IF NOT EXISTS thing_principals (
    principal TEXT NOT NULL, thing_name TEXT NOT NULL, principal_type TEXT NOT NULL,
    attached REAL NOT NULL, PRIMARY KEY (principal, thing_name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thing_principals_thing ON thing_principals(thing_name);
"""


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
