"""Remove what a run created, from its journal: detach first, then delete, then restore.

How each kind of journal entry is undone is declared beside the steps that record it (a
`JournalKind`, e.g. `fleetsim.engine.provisioning.THING`) and handed in; this module only
knows the order of the phases, retries and the report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from botocore.exceptions import ClientError

from fleetsim.control.clients import AwsClients
from fleetsim.control.journal import Entry, settle

# IAM answers NoSuchEntity where AWS IoT answers ResourceNotFoundException.
GONE = {"ResourceNotFoundException", "NoSuchEntity"}
# AWS detaches asynchronously: a delete right after a detach may still see the attachment.
RETRY_LATER = {"DeleteConflictException", "InvalidRequestException", "CertificateStateException"}


class Phase(IntEnum):
    """Phases run one after the other, in this order; what is inside a phase runs
    concurrently."""

    DETACH = 1  # attachments, and what hangs off a thing without being part of it (shadows)
    CERTIFICATES = 2  # deactivated then deleted, once nothing is attached to them
    DELETE = 3  # things and policies
    RESTORE = 4  # account settings put back as they were (event configurations)


Undo = Callable[[AwsClients, dict[str, Any]], Awaitable[Any]]
# Turns a kind's entries into what to undo: e.g. a certificate written down before the call
# that was to create it (by its public key, no id yet) into the certificate it may have made.
Resolve = Callable[[AwsClients, list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class JournalKind:
    """One kind of journal entry (`thing`, `certificate`, ...) and how clean-up removes it."""

    name: str
    phase: Phase
    undo: Undo
    # Only the first entry of this kind is undone (it holds the state to restore).
    first_only: bool = False
    resolve: Resolve | None = None


@dataclass
class CleanupReport:
    removed: dict[str, int] = field(default_factory=dict)
    # Journaled, but not there: removed already, or never made (a call cut short).
    absent: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        """`removed 3 thing, 3 certificate` (and what was journaled but not there)."""
        def counts(by_kind: dict[str, int]) -> str:
            return ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items()))
        absent = sum(self.absent.values())
        return (f"removed {counts(self.removed) or 'nothing'}"
                + (f" ({absent} journaled but not there: removed earlier, or never made by "
                   "a call cut short)" if absent else ""))


def error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


async def with_retry(call: Callable[[], Awaitable[Any]], attempts: int = 6) -> bool:
    """`call`, retried with back-off while AWS still sees an attachment being removed. True if
    it removed something; False if it was already gone (or never made: a call journaled before
    it was made may have been cut short)."""
    delay = 0.25
    for attempt in range(attempts):
        try:
            await call()
            return True
        except ClientError as e:
            code = error_code(e)
            if code in GONE:
                return False
            if code not in RETRY_LATER or attempt == attempts - 1:
                raise
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable: the last attempt returns or raises")


def _describe(entry: Entry) -> str:
    d = entry.data
    return f"{entry.kind} " + ", ".join(f"{k}={v}" for k, v in d.items()
                                        if not isinstance(v, dict | list))


async def _resolved(clients: AwsClients, entries: list[Entry],
                    kinds: Iterable[JournalKind]) -> list[Entry]:
    for kind in kinds:
        if kind.resolve is None:
            continue
        mine = [e.data for e in entries if e.kind == kind.name]
        if mine:
            found = await kind.resolve(clients, mine)
            entries = [e for e in entries if e.kind != kind.name]
            entries += [Entry(kind.name, d) for d in found]
    return settle(entries)


def phases(kinds: Iterable[JournalKind]) -> list[list[JournalKind]]:
    """`kinds` grouped by phase, in phase order."""
    by_phase: dict[Phase, list[JournalKind]] = {}
    for kind in kinds:
        by_phase.setdefault(kind.phase, []).append(kind)
    return [by_phase[p] for p in sorted(by_phase)]


async def cleanup(clients: AwsClients, entries: list[Entry], kinds: Iterable[JournalKind],
                  concurrency: int = 32) -> CleanupReport:
    """Undo every entry of a known kind (others, such as the `run` header, are not resources),
    phase by phase."""
    report = CleanupReport()
    limit = asyncio.Semaphore(concurrency)
    entries = await _resolved(clients, settle(entries), kinds)

    async def undo(kind: JournalKind, entry: Entry) -> None:
        async with limit:
            try:
                done = report.removed if await with_retry(
                    lambda: kind.undo(clients, entry.data)) else report.absent
                done[entry.kind] = done.get(entry.kind, 0) + 1
            except ClientError as e:
                err = e.response.get("Error", {})
                report.failed.append(f"{_describe(entry)}: {err.get('Code')}: "
                                     f"{err.get('Message')}")

    for phase in phases(kinds):
        todo = []
        for kind in phase:
            mine = [e for e in entries if e.kind == kind.name]
            todo += [(kind, e) for e in (mine[:1] if kind.first_only else mine)]
        await asyncio.gather(*(undo(kind, e) for kind, e in todo))
    return report
