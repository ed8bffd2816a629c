"""`attach_thing_principal`: attach each device's certificate to its thing."""

from __future__ import annotations

from typing import ClassVar, Literal

from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep


class AttachThingPrincipalStep(FleetStep):
    kind: Literal["attach_thing_principal"]

    scalar_field: ClassVar[str | None] = "fleet"


async def run(ctx: RunContext, step: AttachThingPrincipalStep) -> None:
    await for_each_device(ctx, ctx.fleet_devices(step.fleet),
                          lambda d: prov.attach_thing_principal(ctx, d), step.pacing)


KIND = StepKind(AttachThingPrincipalStep, run, journals=(prov.THING_PRINCIPAL,), plans=True,
                phase="api")
