"""The run journal: every resource a run may create is written down (and fsynced) *before* the
call that creates it (write-ahead), so `fleetsim cleanup` can remove it even after a kill -9
in the middle of that call. A call the service refuses is followed by a `void` entry: it
created nothing."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

JOURNAL_FILE = "journal.jsonl"
CLEANED_FILE = "cleaned"
# `.fleetsim/runs` keeps the journals of this many cleaned runs (newest first), and of this
# many earlier generations of each persistent journal; pending runs are always kept.
KEEP_CLEANED = 20
VOID = "void"  # {"kind": "void", "of": KIND, ...the data of the entry it cancels}


@dataclass(frozen=True)
class Entry:
    kind: str  # run | thing | certificate | policy | ... | void
    data: dict[str, Any]


class Journal:
    """Opened on the first record, which is preceded by a `run` entry naming the target."""

    def __init__(self, run_dir: Path, header: dict[str, Any]):
        self.run_dir = run_dir
        self.path = run_dir / JOURNAL_FILE
        self._header = header
        self._file: IO[str] | None = None

    @classmethod
    def for_run(cls, runs_dir: Path, run_id: str, target: dict[str, Any],
                scenario: str) -> Journal:
        journal = cls(runs_dir / run_id, {"run_id": run_id, "target": target,
                                          "scenario": scenario})
        journal.record("started", at=time.time())
        return journal

    @classmethod
    def persistent(cls, runs_dir: Path, scenario: str, target: dict[str, Any]) -> Journal:
        """One journal per scenario and target kind, shared by every run of it: what
        persistent fleets create stays until `fleetsim cleanup` removes it."""
        run_dir = persistent_dir(runs_dir, scenario, target)
        if (run_dir / CLEANED_FILE).exists():
            # Everything it listed is gone: start a new one, keep the old for the record.
            (run_dir / JOURNAL_FILE).rename(run_dir / f"journal.{int(time.time())}.jsonl")
            (run_dir / CLEANED_FILE).unlink()
        return cls(run_dir, {"run_id": run_dir.name, "target": target, "scenario": scenario})

    def _open(self) -> IO[str]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),  # noqa: SIM115
                          "a", encoding="utf-8")
        if fresh:
            self._write({"kind": "run", **self._header})
        return self._file

    def _write(self, entry: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def record(self, kind: str, **data: Any) -> None:
        if self._file is None:
            self._open()
        self._write({"kind": kind, **data})

    def void(self, kind: str, **data: Any) -> None:
        """The call a `record(kind, **data)` announced was refused: it created nothing."""
        self.record(VOID, of=kind, **data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def mark_cleaned(self) -> None:
        if self.path.exists():
            (self.run_dir / CLEANED_FILE).write_text(str(time.time()))


def persistent_dir(runs_dir: Path, scenario: str, target: dict[str, Any]) -> Path:
    """Where the persistent journal of a scenario and target kind lives."""
    return runs_dir / f"persistent-{scenario}-{target['kind']}"


def shard_dir(run_dir: Path, shard: int) -> Path:
    """Where the K-th process of a distributed run keeps its own journal, in its run's."""
    return run_dir / f"shard-{shard}"


def read_entries(run_dir: Path, kinds: Iterable[str] | None = None) -> list[Entry]:
    """The run's entries, then those of its shards' journals (a distributed run), each file
    in its order (`settle` applies each file's voids to the entries before them); with
    `kinds`, only entries of those kinds and their voids (the other lines are not parsed:
    a 10,000-device persistent journal holds 50,000 of them)."""
    prefixes = None if kinds is None else _line_prefixes(kinds)
    entries = _read_file(run_dir / JOURNAL_FILE, prefixes)
    for path in sorted(run_dir.glob(f"shard-*/{JOURNAL_FILE}"),
                       key=lambda p: int(p.parent.name.removeprefix("shard-"))
                       if p.parent.name.removeprefix("shard-").isdigit() else 0):
        entries += _read_file(path, prefixes)
    return entries


def _line_prefixes(kinds: Iterable[str]) -> tuple[str, ...]:
    """How the lines of entries of `kinds`, and of their voids, start (`Journal._write`
    writes the kind first, and a void's `of` next)."""
    return tuple(prefix for kind in kinds
                 for prefix in (json.dumps({"kind": kind})[:-1] + ",",
                                json.dumps({"kind": VOID, "of": kind})[:-1] + ","))


def _read_file(path: Path, prefixes: tuple[str, ...] | None = None) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    if prefixes is None:
        return _parsed(text.splitlines())
    # The lines of `prefixes` picked by one regex (a 10,000-device persistent journal holds
    # 50,000 lines, 10,000 of them `thing_principal`): ~4x faster than splitting them all.
    return _parsed(_selector(prefixes).findall("\n" + text))


@functools.lru_cache(maxsize=16)
def _selector(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    """Whole lines starting with one of `prefixes`, each after a "\n" (a literal the regex
    engine scans for; `^` in MULTILINE mode is tried at every character)."""
    return re.compile("\n((?:" + "|".join(map(re.escape, prefixes)) + ")[^\n]*)")


def _parsed(lines: list[str]) -> list[Entry]:
    """The entries of `lines`, parsed as one JSON array (one call instead of one a line: a
    10,000-device start-up reads 10,000); when that fails, line by line, leaving out a line
    torn by a crash mid-write (nothing was created after it)."""
    if not lines:
        return []
    try:
        raws = json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        raws = None
    # A torn line may also swallow the lines after it into valid JSON: fewer values.
    if raws is None or len(raws) != len(lines) or not all(type(r) is dict for r in raws):
        raws = []
        for line in lines:
            try:
                raws.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return [Entry(raw.pop("kind"), raw) for raw in raws]


def settle(entries: list[Entry]) -> list[Entry]:
    """The entries that still stand: a `void` cancels the latest equal entry before it, and
    equal entries (the same resource written down twice) count once."""
    kept: list[Entry] = []
    for entry in entries:
        if entry.kind != VOID:
            kept.append(entry)
            continue
        data = dict(entry.data)
        of = data.pop("of", None)
        for i in range(len(kept) - 1, -1, -1):
            if kept[i].kind == of and kept[i].data == data:
                del kept[i]
                break
    seen: set[tuple[str, str]] = set()
    unique = []
    for entry in kept:
        key = (entry.kind, json.dumps(entry.data, sort_keys=True))
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique


def pending_runs(runs_dir: Path) -> Iterator[Path]:
    """Runs whose resources have not been cleaned up, oldest first."""
    if not runs_dir.is_dir():
        return
    for run_dir in sorted(runs_dir.iterdir()):
        if (run_dir / JOURNAL_FILE).exists() and not (run_dir / CLEANED_FILE).exists():
            yield run_dir


def prune(runs_dir: Path, keep: int = KEEP_CLEANED) -> int:
    """Delete the run directories of cleaned runs beyond the newest `keep` (run ids start with
    their start time, so names sort by age), and old generations of persistent journals
    beyond `keep` each. Returns how many were deleted."""
    if not runs_dir.is_dir():
        return 0
    dirs = sorted(d for d in runs_dir.iterdir() if d.is_dir())
    cleaned = [d for d in dirs if not d.name.startswith("persistent-")
               and (d / CLEANED_FILE).exists()]
    old = cleaned[:-keep] if keep else cleaned
    for run_dir in old:
        shutil.rmtree(run_dir, ignore_errors=True)
    deleted = len(old)
    for run_dir in dirs:
        if run_dir.name.startswith("persistent-"):
            generations = sorted((p for p in run_dir.glob("journal.*.jsonl")
                                  if p.name.split(".")[1].isdigit()),
                                 key=lambda p: int(p.name.split(".")[1]))
            for path in generations[:-keep] if keep else generations:
                path.unlink(missing_ok=True)
                deleted += 1
    return deleted
