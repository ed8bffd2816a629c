"""Numbered migrations of `state.db`, applied in order at start.

Each is a module `mNNNN_<what>.py` in this package with a `migrate(db, default_region)`
function; NNNN is the schema version it produces. The version lives in `meta.schema_version`
(written by every release, including the first, which wrote '1'). A database newer than this
code is refused with one sentence naming its directory.

Versions: 0001 the first release's schema, 0002 regional resources and per-feature tables,
0003 device shadows, 0004 provisioning templates and certificate ownership tokens, 0005 S3
and bulk registration tasks, 0006 CloudWatch Logs (log groups, streams, events), 0007 the fleet
indexing configuration, 0008 Lambda functions and their resource policies, 0009 topic rules,
0010 AWS IoT logging options and levels, and IAM roles, 0011 IoT Jobs (jobs,
targets, executions, templates), 0012 the Software Package Catalog (packages, versions,
the package configuration).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

from fleetsim.errors import UserError

Migration = Callable[[sqlite3.Connection, str], None]
_NAME = re.compile(r"m(\d{4})_\w+")


def migrations() -> list[tuple[int, Migration]]:
    """(version, migrate) for every module in this package, in version order."""
    found: list[tuple[int, Migration]] = []
    for info in pkgutil.iter_modules(__path__):
        m = _NAME.fullmatch(info.name)
        if m is None:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append((int(m.group(1)), module.migrate))
    found.sort(key=lambda vm: vm[0])
    versions = [v for v, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


def current_version(db: sqlite3.Connection) -> int:
    """0 for an empty database."""
    has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                          ).fetchone()
    if has_meta is None:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def apply_migrations(db: sqlite3.Connection, path: Path, default_region: str) -> int:
    """Bring `db` (inside a transaction) to the newest version; returns it."""
    steps = migrations()
    newest = steps[-1][0] if steps else 0
    version = current_version(db)
    if version > newest:
        raise UserError(f"the local core state in {path.parent} was written by a newer "
                        f"fleetsim (schema version {version}, this one knows up to {newest}): "
                        "upgrade fleetsim, or use another --state-dir")
    for number, migrate in steps[version:]:
        migrate(db, default_region)
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                   (str(number),))
    return newest
