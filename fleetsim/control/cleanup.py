"""Remove what a run created, from its journal: detach first, then delete, then restore."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from fleetsim.control.journal import Entry

GONE = {"ResourceNotFoundException"}
# AWS detaches asynchronously: a delete right after a detach may still see the attachment.
RETRY_LATER = {"DeleteConflictException", "InvalidRequestException", "CertificateStateException"}
# Phases run one after the other; what is inside a phase runs concurrently.
PHASES: tuple[tuple[str, ...], ...] = (
    ("policy_attachment", "thing_principal"),
    ("certificate",),
    ("thing", "policy"),
    ("events",),
)


@dataclass
class CleanupReport:
    removed: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


async def _with_retry(call: Callable[[], Awaitable[Any]], attempts: int = 6) -> None:
    delay = 0.25
    for attempt in range(attempts):
        try:
            await call()
            return
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in GONE:
                return
            if code not in RETRY_LATER or attempt == attempts - 1:
                raise
            await asyncio.sleep(delay)
            delay *= 2


def _undo(iot: Any, entry: Entry) -> Callable[[], Awaitable[Any]]:
    d = entry.data
    match entry.kind:
        case "policy_attachment":
            return lambda: iot.detach_policy(policyName=d["policy"], target=d["target"])
        case "thing_principal":
            return lambda: iot.detach_thing_principal(thingName=d["thing"],
                                                      principal=d["principal"])
        case "certificate":
            async def delete_certificate() -> None:
                try:
                    await iot.update_certificate(certificateId=d["id"], newStatus="INACTIVE")
                except ClientError as e:
                    if e.response.get("Error", {}).get("Code") not in GONE:
                        raise
                await _with_retry(lambda: iot.delete_certificate(certificateId=d["id"],
                                                                 forceDelete=True))
            return delete_certificate
        case "thing":
            return lambda: iot.delete_thing(thingName=d["name"])
        case "policy":
            return lambda: iot.delete_policy(policyName=d["name"])
        case "events":
            return lambda: iot.update_event_configurations(eventConfigurations=d["previous"])
    raise ValueError(f"journal entry of unknown kind {entry.kind!r}")


def _describe(entry: Entry) -> str:
    d = entry.data
    return f"{entry.kind} " + ", ".join(f"{k}={v}" for k, v in d.items() if k != "previous")


async def cleanup(iot: Any, entries: list[Entry], concurrency: int = 32) -> CleanupReport:
    report = CleanupReport()
    limit = asyncio.Semaphore(concurrency)

    async def undo(entry: Entry) -> None:
        async with limit:
            try:
                await _with_retry(_undo(iot, entry))
                report.removed[entry.kind] = report.removed.get(entry.kind, 0) + 1
            except ClientError as e:
                err = e.response.get("Error", {})
                report.failed.append(f"{_describe(entry)}: {err.get('Code')}: "
                                     f"{err.get('Message')}")

    for kinds in PHASES:
        todo = [e for e in entries if e.kind in kinds]
        if kinds == ("events",):
            todo = todo[:1]  # the first change recorded holds the configuration to restore
        await asyncio.gather(*(undo(e) for e in todo))
    return report
