"""The run journal: every resource a run creates is written down (and fsynced) before the run
goes on, so `fleetsim cleanup` can remove it even after a crash."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNS_DIR = Path(".fleetsim/runs")
JOURNAL_FILE = "journal.jsonl"
CLEANED_FILE = "cleaned"


@dataclass(frozen=True)
class Entry:
    kind: str  # thing | certificate | policy | policy_attachment | thing_principal | events
    data: dict[str, Any]


class Journal:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = run_dir / JOURNAL_FILE
        run_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    @classmethod
    def create(cls, runs_dir: Path, run_id: str, target: dict[str, Any],
               scenario: str) -> Journal:
        journal = cls(runs_dir / run_id)
        journal.record("run", run_id=run_id, target=target, scenario=scenario,
                       started=time.time())
        return journal

    def record(self, kind: str, **data: Any) -> None:
        self._file.write(json.dumps({"kind": kind, **data}) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def mark_cleaned(self) -> None:
        (self.run_dir / CLEANED_FILE).write_text(str(time.time()))


def read_entries(run_dir: Path) -> list[Entry]:
    entries = []
    path = run_dir / JOURNAL_FILE
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash mid-write: nothing was created after it
        entries.append(Entry(raw.pop("kind"), raw))
    return entries


def pending_runs(runs_dir: Path) -> Iterator[Path]:
    """Runs whose resources have not been cleaned up, oldest first."""
    if not runs_dir.is_dir():
        return
    for run_dir in sorted(runs_dir.iterdir()):
        if (run_dir / JOURNAL_FILE).exists() and not (run_dir / CLEANED_FILE).exists():
            yield run_dir
