"""Version 4: provisioning templates. PLACEHOLDER (no-op) so that version 5 applies on this
branch; the provisioning-template branch's own migration 0004 replaces this file at the merge."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    return None
