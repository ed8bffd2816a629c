"""`update_things`: update-thing with attributes for every device of a fleet (values are
templates, e.g. `room_number: "{index}"`)."""

from __future__ import annotations

from typing import Literal

from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate


class UpdateThingsStep(FleetStep):
    kind: Literal["update_things"]
    attributes: dict[str, str]
    merge: bool = True

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return template_problems((*at, "attributes"), self.attributes, DEVICE_NAMES)


async def run(ctx: RunContext, step: UpdateThingsStep) -> None:
    template = StructTemplate(step.attributes, DEVICE_NAMES)

    async def update(d: Device) -> None:
        attributes = {k: str(v) for k, v in template.render(d.names).items()}
        await api_call(ctx, "UpdateThing", d.thing_name, thingName=d.thing_name,
                       attributePayload={"attributes": attributes, "merge": step.merge})

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), update, step.pacing)


KIND = StepKind(UpdateThingsStep, run)
