"""Which journals vouch for a stored identity's attachment to its thing (engine/stored.py):
the persistent journal and every run not cleaned up yet (a kept run's), not a cleaned run's,
and not an attachment voided or never made."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from fleetsim.control.journal import Journal
from fleetsim.engine.stored import THING_PRINCIPAL, journaled_attachments

TARGET = {"kind": "local"}


def _journal(runs: Path, run_id: str, *things: str) -> Journal:
    journal = Journal.for_run(runs, run_id, TARGET, "s")
    for thing in things:
        journal.record(THING_PRINCIPAL, thing=thing, principal=f"arn:cert/{thing}")
    journal.close()
    return journal


def test_persistent_and_pending_journals_vouch_cleaned_and_voided_do_not(tmp_path: Path
                                                                        ) -> None:
    runs = tmp_path / "runs"
    persistent = Journal.persistent(runs, "s", TARGET)
    persistent.record(THING_PRINCIPAL, thing="p", principal="arn:cert/p")
    persistent.close()
    _journal(runs, "20260101-000000-kept", "kept")
    _journal(runs, "20260101-000001-cleaned", "cleaned").mark_cleaned()
    voided = _journal(runs, "20260101-000002-refused", "refused")
    voided.void(THING_PRINCIPAL, thing="refused", principal="arn:cert/refused")
    voided.close()
    this = _journal(runs, "20260101-000003-this", "this")
    ctx = cast(Any, SimpleNamespace(persistent_journal=persistent, journal=this))
    assert journaled_attachments(ctx) == {
        ("p", "arn:cert/p"), ("kept", "arn:cert/kept"), ("this", "arn:cert/this")}
