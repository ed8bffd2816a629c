"""The write-ahead journal as cleanup reads it (voids, duplicates), pruning of old runs, and
identity files removed with their certificate."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fleetsim.control.journal import CLEANED_FILE, Entry, Journal, prune, read_entries, settle
from fleetsim.device.identity import remove_identity


def test_void_cancels_the_latest_equal_entry_only() -> None:
    entries = [Entry("policy", {"name": "p"}),  # created by an earlier run: still there
               Entry("thing", {"name": "a"}),
               Entry("policy", {"name": "p"}),  # this run's attempt, refused
               Entry("void", {"of": "policy", "name": "p"}),
               Entry("thing", {"name": "b"}),
               Entry("void", {"of": "thing", "name": "b"})]
    assert settle(entries) == [Entry("policy", {"name": "p"}), Entry("thing", {"name": "a"})]


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=20))
def test_every_attempt_voided_leaves_nothing(names: list[str]) -> None:
    entries = []
    for name in names:
        entries += [Entry("thing", {"name": name}), Entry("void", {"of": "thing", "name": name})]
    assert settle(entries) == []


def test_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r", {"run_id": "r"})
    journal.record("thing", name="a")
    journal.void("thing", name="a")
    journal.record("thing", name="b")
    journal.close()
    with (tmp_path / "r" / "journal.jsonl").open("a") as f:
        f.write('{"kind": "thing", "na')  # kill -9 mid-write
    assert [e for e in settle(read_entries(tmp_path / "r")) if e.kind == "thing"] == \
        [Entry("thing", {"name": "b"})]


def _run_dir(runs: Path, name: str, cleaned: bool) -> Path:
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    (run_dir / "journal.jsonl").write_text('{"kind": "run"}\n')
    if cleaned:
        (run_dir / CLEANED_FILE).write_text("0")
    return run_dir


def test_prune_keeps_pending_runs_and_the_newest_cleaned(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cleaned = [_run_dir(runs, f"20260101-0000{i:02d}-s-x", cleaned=True) for i in range(8)]
    pending = _run_dir(runs, "20250101-000000-s-x", cleaned=False)
    persistent = _run_dir(runs, "persistent-s-local", cleaned=False)
    for stamp in range(1, 6):
        (persistent / f"journal.{stamp}.jsonl").write_text("")
    assert prune(runs, keep=3) == 5 + 2
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        [pending.name, persistent.name, *(d.name for d in cleaned[-3:])])
    assert sorted(p.name for p in persistent.glob("journal.*.jsonl")) == \
        ["journal.3.jsonl", "journal.4.jsonl", "journal.5.jsonl"]


def _identity(base: Path, certificate_id: str) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".key", ".crt"):
        base.with_suffix(suffix).write_text("x")
    base.with_suffix(".json").write_text(json.dumps({"certificate_id": certificate_id}))


def test_identity_files_go_with_their_certificate_only(tmp_path: Path) -> None:
    base = tmp_path / "identities" / "scenario" / "fleet" / "dev-0"
    _identity(base, "new")
    assert not remove_identity(base, "old")  # re-provisioned since: another certificate
    assert base.with_suffix(".key").exists()
    assert remove_identity(base, "new")
    assert not (tmp_path / "identities" / "scenario").exists()  # empty folders too
    assert (tmp_path / "identities").exists()
