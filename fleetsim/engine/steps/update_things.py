"""`update_things`: update-thing with attributes for every device of a fleet."""

from __future__ import annotations

from typing import Literal

from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep


class UpdateThingsStep(FleetStep):
    kind: Literal["update_things"]
    attributes: dict[str, str]
    merge: bool = True


async def run(ctx: RunContext, step: UpdateThingsStep) -> None:
    payload = {"attributes": step.attributes, "merge": step.merge}

    async def update(d: Device) -> None:
        await api_call(ctx, "UpdateThing", d.thing_name, thingName=d.thing_name,
                       attributePayload=payload)

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), update, step.pacing)


KIND = StepKind(UpdateThingsStep, run)
