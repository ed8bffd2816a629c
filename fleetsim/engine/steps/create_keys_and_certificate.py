"""`create_keys_and_certificate`: the service makes each device's key (RSA-2048 on AWS)."""

from __future__ import annotations

from typing import ClassVar, Literal

from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep


class CreateKeysAndCertificateStep(FleetStep):
    kind: Literal["create_keys_and_certificate"]
    set_as_active: bool = True

    scalar_field: ClassVar[str | None] = "fleet"


async def run(ctx: RunContext, step: CreateKeysAndCertificateStep) -> None:
    await for_each_device(ctx, ctx.fleet_devices(step.fleet),
                          lambda d: prov.keys_and_certificate(ctx, d, step.set_as_active),
                          step.pacing)


KIND = StepKind(CreateKeysAndCertificateStep, run, journals=(prov.CERTIFICATE,), plans=True,
                phase="api")
