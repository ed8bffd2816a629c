"""`add_to_thing_group`: every device's thing joins a static thing group
(AddThingToThingGroup); removed from it again at clean-up (RemoveThingFromThingGroup)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase, with_retry
from fleetsim.engine.context import Device, RunContext
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
    async def add(d: Device) -> None:
        await journaled(ctx.journal_for(d.fleet), GROUP_MEMBERSHIP.name,
                        {"group": step.group, "thing": d.thing_name},
                        api_call(ctx, "AddThingToThingGroup", d.thing_name,
                                 thingGroupName=step.group, thingName=d.thing_name))

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), add, step.pacing)


KIND = StepKind(AddToThingGroupStep, run, journals=(GROUP_MEMBERSHIP,))
