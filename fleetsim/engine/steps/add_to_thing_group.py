"""`add_to_thing_group`: every device's thing joins a static thing group
(AddThingToThingGroup); removed from it again at clean-up (RemoveThingFromThingGroup)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase, with_retry
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.provisioning import journaled
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep

GROUP_MEMBERSHIP = JournalKind(
    "thing_group_membership", Phase.DETACH,
    lambda c, d: with_retry(lambda: c.iot.remove_thing_from_thing_group(
        thingGroupName=d["group"], thingName=d["thing"])))


class AddToThingGroupStep(FleetStep):
    kind: Literal["add_to_thing_group"]
    group: str = Field(pattern=r"^[a-zA-Z0-9:_-]{1,128}$")


async def run(ctx: RunContext, step: AddToThingGroupStep) -> None:
    """A thing this run created joins the group (created); an earlier run's is looked for in
    it first (ListThingGroupsForThing): a member, reused; not, drift (`thing T: not in group
    G`), fixed by adding it again."""
    ledger = ctx.reconcile

    async def add(d: Device) -> None:
        journal = ctx.journal_for(d.fleet)
        if ledger.is_fresh_thing(d.thing_name):
            ledger.create(GROUP_MEMBERSHIP.name, f"{d.thing_name} in {step.group}",
                          journal is ctx.journal)
        else:
            have = await describe(ctx, "ListThingGroupsForThing", d.thing_name,
                                  thingName=d.thing_name, maxResults=250)
            groups = {g["groupName"] for g in (have or {}).get("thingGroups", [])}
            if step.group in groups:
                ledger.reuse(GROUP_MEMBERSHIP.name, f"{d.thing_name} in {step.group}")
                return
            ledger.drifted("thing", d.thing_name, [f"not in group {step.group}"])
        if ledger.plan:
            return
        await journaled(journal, GROUP_MEMBERSHIP.name,
                        {"group": step.group, "thing": d.thing_name},
                        api_call(ctx, "AddThingToThingGroup", d.thing_name,
                                 thingGroupName=step.group, thingName=d.thing_name))

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), add, step.pacing)


KIND = StepKind(AddToThingGroupStep, run, journals=(GROUP_MEMBERSHIP,), plans=True, phase="api")
