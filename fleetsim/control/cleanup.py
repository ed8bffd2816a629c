"""Remove what a run created, from its journal: detach first, then delete, then restore.

How each kind of journal entry is undone is declared beside the steps that record it (a
`JournalKind`, e.g. `fleetsim.engine.provisioning.THING`) and handed in; this module only
knows the order of the phases, retries (throttling, AWS's eventual consistency, AWS's waits)
and the report: every entry is removed, found absent, deferred (AWS deletes it only later) or
reported as failed with its kind, name and error - never dropped silently."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from botocore.exceptions import ClientError

from fleetsim.control.clients import AwsClients
from fleetsim.control.journal import Entry, settle

# IAM answers NoSuchEntity, S3 NoSuchBucket / NoSuchKey where AWS IoT answers
# ResourceNotFoundException.
GONE = {"ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket", "NoSuchKey"}
# AWS detaches asynchronously: a delete right after a detach may still see the attachment.
RETRY_LATER = {"DeleteConflictException", "InvalidRequestException", "CertificateStateException"}
# Too many calls: AWS IoT ThrottlingException (HTTP 400), Lambda TooManyRequestsException
# (429), IAM and jobs LimitExceededException ("Only 10 jobs may have status
# DELETION_IN_PROGRESS at the same time", DeleteJob), S3 SlowDown; and any HTTP 429.
THROTTLED = {"ThrottlingException", "TooManyRequestsException", "LimitExceededException",
             "Throttling", "SlowDown", "RequestLimitExceeded"}
THROTTLE_ATTEMPTS = 10
MAX_BACKOFF_S = 20.0
# How long clean-up keeps asking for something AWS deletes only after a wait (a thing type
# five minutes after its deprecation) beyond the moment it was told.
NOT_YET_SLACK_S = 60.0


class Phase(IntEnum):
    """Phases run one after the other, in this order; what is inside a phase runs
    concurrently (in waves, deepest first, for kinds that nest: thing groups)."""

    DETACH = 1  # attachments, and what hangs off a thing without being part of it (shadows)
    CERTIFICATES = 2  # detached, deactivated, then deleted
    DELETE = 3  # things, policies, groups, rules, functions, buckets, templates, roles
    AFTER_DELETE = 4  # thing types: once no thing is of the type, after AWS's wait
    RESTORE = 5  # account settings put back as they were (indexing, logging, events)


Undo = Callable[[AwsClients, dict[str, Any]], Awaitable[Any]]
# Turns a kind's entries into what to undo: e.g. a certificate written down before the call
# that was to create it (by its public key, no id yet) into the certificate it may have made.
Resolve = Callable[[AwsClients, list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]
# What an entry made that the journal does not list (a bulk registration task's things and
# certificates), as entries of other kinds; `may_change` False (a dry run): only look.
Expand = Callable[[AwsClients, list[dict[str, Any]], bool], Awaitable[list[Entry]]]


@dataclass(frozen=True)
class JournalKind:
    """One kind of journal entry (`thing`, `certificate`, ...) and how clean-up removes it."""

    name: str
    phase: Phase
    undo: Undo
    # Only the first entry of this kind is undone (it holds the state to restore).
    first_only: bool = False
    resolve: Resolve | None = None
    expand: Expand | None = None
    # The entry's data key whose (int) value orders undoing: higher first (a group's depth).
    wave_key: str | None = None
    # Not a resource (a task that made resources): expanded, never counted or undone.
    marker: bool = False


class NotYet(Exception):
    """Raised by an undo: AWS removes this only from `after` (epoch seconds) on."""

    def __init__(self, after: float, reason: str):
        super().__init__(reason)
        self.after = after
        self.reason = reason


@dataclass(frozen=True)
class Deferred:
    kind: str
    name: str
    after: float

    def __str__(self) -> str:
        at = time.strftime("%H:%M:%S", time.localtime(self.after))
        return f"{self.kind} {self.name}: deletable after {at}, run `fleetsim cleanup` again"


@dataclass
class CleanupReport:
    removed: dict[str, int] = field(default_factory=dict)
    # Journaled, but not there: removed already, or never made (a call cut short).
    absent: dict[str, int] = field(default_factory=dict)
    # `kind name: Code: message`, one per entry clean-up could not remove.
    failed: list[str] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing is left behind."""
        return not self.failed and not self.deferred

    def describe(self) -> str:
        """`removed 3 thing, 3 certificate` (and what was journaled but not there)."""
        def counts(by_kind: dict[str, int]) -> str:
            return ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items()))
        absent = sum(self.absent.values())
        if not self.removed and not absent and not self.failed and not self.deferred:
            return "nothing to remove"
        return (f"removed {counts(self.removed) or 'nothing'}"
                + (f" ({absent} journaled but not there: removed earlier, or never made by "
                   "a call cut short)" if absent else ""))


def error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def throttled(e: ClientError) -> bool:
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(e) in THROTTLED or status == 429


def backoff(attempt: int) -> float:
    """Exponential back-off with full jitter ("Exponential Backoff And Jitter", AWS
    Architecture Blog): a random wait up to 0.25 s x 2^attempt, at most MAX_BACKOFF_S."""
    return random.uniform(0, min(MAX_BACKOFF_S, 0.25 * 2 ** attempt))


async def with_retry(call: Callable[[], Awaitable[Any]], attempts: int = 6) -> bool:
    """`call`, retried with back-off while AWS still sees an attachment being removed, and
    while it throttles. True if it removed something; False if it was already gone (or never
    made: a call journaled before it was made may have been cut short)."""
    delay, later, throttles = 0.25, 0, 0
    while True:
        try:
            await call()
            return True
        except ClientError as e:
            if error_code(e) in GONE:
                return False
            if throttled(e):
                throttles += 1
                if throttles >= THROTTLE_ATTEMPTS:
                    raise
                await asyncio.sleep(backoff(throttles))
                continue
            later += 1
            if error_code(e) not in RETRY_LATER or later >= attempts:
                raise
            await asyncio.sleep(delay)
            delay *= 2


async def retried(call: Callable[..., Awaitable[Any]], **params: Any) -> bool:
    """`call(**params)` under `with_retry`."""
    return await with_retry(lambda: call(**params))


def entry_name(entry: Entry) -> str:
    """What names the entry's resource: `name`, else its id, else every plain field."""
    d = entry.data
    for key in ("name", "job_id", "id"):
        if key in d:
            return str(d[key])
    if "bucket" in d:
        return f"s3://{d['bucket']}/{d.get('key', '')}".rstrip("/")
    return ", ".join(f"{k}={v}" for k, v in d.items()
                     if not isinstance(v, dict | list) and not k.startswith("_")
                     and k not in ("at", "identity"))


async def expanded(clients: AwsClients, entries: list[Entry], kinds: Iterable[JournalKind],
                   may_change: bool = True) -> list[Entry]:
    """`entries` settled, with what expanding kinds made added and what resolving kinds
    stand for put in their place."""
    kinds = list(kinds)
    entries = settle(entries)
    for kind in kinds:
        mine = [e.data for e in entries if e.kind == kind.name]
        if kind.expand is not None and mine:
            entries = entries + await kind.expand(clients, mine, may_change)
    entries = settle(entries)
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


def _todo(kinds: list[JournalKind], entries: list[Entry]) -> list[tuple[JournalKind, Entry]]:
    todo = []
    for kind in phases(kinds):
        for k in kind:
            if k.marker:
                continue
            mine = [e for e in entries if e.kind == k.name]
            todo += [(k, e) for e in (mine[:1] if k.first_only else mine)]
    return todo


def _waves(todo: list[tuple[JournalKind, Entry]]) -> list[list[tuple[JournalKind, Entry]]]:
    def wave(item: tuple[JournalKind, Entry]) -> int:
        kind, entry = item
        return int(entry.data.get(kind.wave_key, 0) or 0) if kind.wave_key else 0
    levels = sorted({wave(i) for i in todo}, reverse=True)
    return [[i for i in todo if wave(i) == level] for level in levels]


async def plan(clients: AwsClients, entries: list[Entry], kinds: Iterable[JournalKind]
               ) -> list[tuple[str, str]]:
    """(kind, name) of everything a clean-up of `entries` would undo, in its order; changes
    nothing."""
    kinds = list(kinds)
    entries = await expanded(clients, entries, kinds, may_change=False)
    return [(k.name, entry_name(e)) for phase in phases(kinds)
            for wave in _waves(_todo(phase, entries)) for k, e in wave]


async def cleanup(clients: AwsClients, entries: list[Entry], kinds: Iterable[JournalKind],
                  concurrency: int = 32, wait: bool = True) -> CleanupReport:
    """Undo every entry of a known kind (others, such as the `run` header, are not resources),
    phase by phase. What AWS removes only after a wait (`NotYet`) is waited for, or with
    `wait` False reported as deferred."""
    kinds = list(kinds)
    report = CleanupReport()
    limit = asyncio.Semaphore(concurrency)
    try:
        entries = await expanded(clients, entries, kinds)
    except ClientError as e:
        err = e.response.get("Error", {})
        report.failed.append(f"journal: {err.get('Code')}: {err.get('Message')}")
        return report

    async def undo(kind: JournalKind, entry: Entry) -> None:
        name = entry_name(entry)
        try:
            async with limit:
                gone = await _undo_waiting(clients, kind, entry, wait)
            done = report.removed if gone else report.absent
            done[entry.kind] = done.get(entry.kind, 0) + 1
        except NotYet as e:
            report.deferred.append(Deferred(entry.kind, name, e.after))
        except ClientError as e:
            err = e.response.get("Error", {})
            report.failed.append(f"{entry.kind} {name}: {err.get('Code')}: "
                                 f"{err.get('Message')}")

    for phase in phases(kinds):
        for wave in _waves(_todo(phase, entries)):
            await asyncio.gather(*(undo(kind, e) for kind, e in wave))
    return report


async def _undo_waiting(clients: AwsClients, kind: JournalKind, entry: Entry,
                        wait: bool) -> bool:
    """The undo, retried; asked again until AWS removes it (`NotYet`) if `wait`."""
    attempt = 0
    while True:
        try:
            return await with_retry(lambda: kind.undo(clients, entry.data))
        except NotYet as e:
            now = time.time()
            if not wait:
                raise
            if now > e.after + NOT_YET_SLACK_S:
                raise ClientError({"Error": {"Code": "InvalidRequestException",
                                             "Message": e.reason}}, "Undo") from e
            attempt += 1
            await asyncio.sleep(min(15.0, 0.5 * 2 ** attempt))  # 1 s, 2 s, 4 s ... 15 s
