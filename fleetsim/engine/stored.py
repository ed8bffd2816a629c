"""Checking persistent identities in bulk at start-up, instead of two API calls per device.

A stored identity is ready when its certificate is still ACTIVE and attached to its thing.
Asking DescribeCertificate and ListThingPrincipals per device cost a third of a 1,000-device
run's CPU (issue 9). Instead: the journals that still stand (the scenario's persistent journal
and every run not cleaned up yet, e.g. a run kept with `--keep`) say which certificates were
attached to which things (and not detached since), and one ListCertificates listing (pages of
up to 250, the API reference's maximum pageSize) says which certificates exist and their status.
A device no journal vouches for is still checked one by one (`known` is False).

The listing's pages are read for each certificate's id and status only (`bare_statuses`):
botocore's parser builds a dict and a `creationDate` datetime per certificate (~23 us each,
0.23 s for 10,000), which nothing here reads.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fleetsim.control.journal import VOID, Entry, pending_runs, read_entries
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call

PAGE_SIZE = 250  # ListCertificates: pageSize 1-250
THING_PRINCIPAL = "thing_principal"


@dataclass
class StoredState:
    """What the persistent journal and one certificate listing say."""

    attached: set[tuple[str, str]] = field(default_factory=set)  # (thing, certificate ARN)
    status: dict[str, str] = field(default_factory=dict)  # certificate id -> status

    def known(self, thing: str, certificate_arn: str | None) -> bool:
        return certificate_arn is not None and (thing, certificate_arn) in self.attached

    def active(self, certificate_id: str) -> bool:
        return self.status.get(certificate_id) == "ACTIVE"


def journaled_attachments(ctx: RunContext) -> set[tuple[str, str]]:
    """(thing, certificate ARN) attachments that the persistent journal and every journal
    not cleaned up yet (kept runs, this run's own) hold: made by fleetsim, not undone since."""
    persistent = ctx.persistent_journal.run_dir
    dirs = {persistent, ctx.journal.run_dir, *pending_runs(persistent.parent)}
    attached: set[tuple[str, str]] = set()
    for run_dir in dirs:
        attached |= standing_attachments(read_entries(run_dir, (THING_PRINCIPAL,)))
    return attached


def standing_attachments(entries: Iterable[Entry]) -> set[tuple[str, str]]:
    """The (thing, principal) of the `thing_principal` entries that still stand, as
    `journal.settle` keeps them (a void cancels one equal entry before it), counted instead
    of settled: settle serialises every entry to compare it (10,000 at a 10,000-device
    start-up)."""
    count: Counter[Any] = Counter()
    pairs: dict[Any, tuple[Any, Any]] = {}
    for entry in entries:
        if entry.kind == THING_PRINCIPAL:
            key = _key(entry.data)
            count[key] += 1
            pairs[key] = (entry.data.get("thing"), entry.data.get("principal"))
        elif entry.kind == VOID and entry.data.get("of") == THING_PRINCIPAL:
            key = _key({k: v for k, v in entry.data.items() if k != "of"})
            if count[key] > 0:
                count[key] -= 1
    return {(thing, principal) for key, n in count.items() if n > 0
            for thing, principal in [pairs[key]]
            if isinstance(thing, str) and isinstance(principal, str)}


def _key(data: dict[str, Any]) -> Any:
    """`data`, hashable, equal for equal data (as settle compares them): (thing, principal)
    for the entries fleetsim writes, which hold nothing else (no other key is a pair of
    strings)."""
    if len(data) == 2:
        thing, principal = data.get("thing"), data.get("principal")
        if type(thing) is str and type(principal) is str:
            return thing, principal
    key = tuple(sorted(data.items()))
    try:
        hash(key)
        return key
    except TypeError:  # a value that is a list or dict: compared as settle does
        return json.dumps(data, sort_keys=True)


# Set while this module lists certificates: `bare_statuses` then reads the pages itself.
_BARE = contextvars.ContextVar("fleetsim_bare_listing", default=False)
_BARE_EVENT = "before-parse.iot.ListCertificates"


def bare_statuses(response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                  **_: Any) -> None:
    """botocore's `before-parse` hook for ListCertificates: while `_BARE` is set, a page that
    succeeded is read here as `statuses` (certificate id -> status) and `nextMarker` (API
    reference, "ListCertificates": `certificates[].certificateId`, `.status`, `nextMarker`),
    and botocore's parser is left an empty body. Any other call is parsed as ever."""
    if not _BARE.get() or response_dict.get("status_code") != 200:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes | str):
        return
    page = json.loads(body)
    customized_response_dict["statuses"] = {
        c["certificateId"]: c["status"] for c in page.get("certificates") or []}
    if page.get("nextMarker"):
        customized_response_dict["nextMarker"] = page["nextMarker"]
    response_dict["body"] = b"{}"


def _bare_listing(iot: Any) -> bool:
    """Hook `bare_statuses` into the client once; False for a client without botocore's
    events (a test's fake): its pages are read as they come."""
    events = getattr(getattr(iot, "meta", None), "events", None)
    if events is None or not hasattr(events, "register"):
        return False
    events.register(_BARE_EVENT, bare_statuses, unique_id="fleetsim-bare-statuses")
    return True


async def _load(ctx: RunContext) -> StoredState:
    state = StoredState(journaled_attachments(ctx))
    if not state.attached:
        return state  # nothing to vouch for: no listing needed
    params: dict[str, Any] = {"pageSize": PAGE_SIZE}
    if _bare_listing(ctx.iot):
        _BARE.set(True)  # this task's context only (_load runs as a task of its own)
    while True:
        page = await api_call(ctx, "ListCertificates", **params)
        if "statuses" in page:
            state.status.update(page["statuses"])
        else:
            for cert in page.get("certificates", []):
                state.status[cert["certificateId"]] = cert["status"]
        marker = page.get("nextMarker")
        if not marker:
            return state
        params["marker"] = marker


async def stored_state(ctx: RunContext) -> StoredState:
    """Loaded once per run (concurrent callers share the one listing)."""
    if ctx.stored is None:
        ctx.stored = asyncio.ensure_future(_load(ctx))
    return await asyncio.shield(ctx.stored)
