"""Checking persistent identities in bulk at start-up, instead of two API calls per device.

A stored identity is ready when its certificate is still ACTIVE and attached to its thing.
Asking DescribeCertificate and ListThingPrincipals per device cost a third of a 1,000-device
run's CPU (issue 9). Instead: the journals that still stand (the scenario's persistent journal
and every run not cleaned up yet, e.g. a run kept with `--keep`) say which certificates were
attached to which things (and not detached since), and one ListCertificates listing (pages of
up to 250, the API reference's maximum pageSize) says which certificates exist and their status.
A device no journal vouches for is still checked one by one (`known` is False).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fleetsim.control.journal import pending_runs, read_entries, settle
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
        attached |= {(e.data["thing"], e.data["principal"])
                     for e in settle(read_entries(run_dir, (THING_PRINCIPAL,)))
                     if e.kind == THING_PRINCIPAL and "thing" in e.data and "principal" in e.data}
    return attached


async def _load(ctx: RunContext) -> StoredState:
    state = StoredState(journaled_attachments(ctx))
    if not state.attached:
        return state  # nothing to vouch for: no listing needed
    params: dict[str, Any] = {"pageSize": PAGE_SIZE}
    while True:
        page = await api_call(ctx, "ListCertificates", **params)
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
