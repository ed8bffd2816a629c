"""`create_things`: create-thing for every device of a fleet."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep


class CreateThingsStep(FleetStep):
    kind: Literal["create_things"]
    attributes: dict[str, str] = Field(default_factory=dict)
    thing_type: str | None = None

    scalar_field: ClassVar[str | None] = "fleet"


async def run(ctx: RunContext, step: CreateThingsStep) -> None:
    await for_each_device(
        ctx, ctx.fleet_devices(step.fleet),
        lambda d: prov.create_thing(ctx, d, step.attributes, step.thing_type), step.pacing)


KIND = StepKind(CreateThingsStep, run, journals=(prov.THING,), plans=True, phase="api")
