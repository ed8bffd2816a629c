"""`create_certificate_from_csr`: each device makes its key and CSR; AWS signs it."""

from __future__ import annotations

from typing import ClassVar, Literal

from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep


class CreateCertificateFromCsrStep(FleetStep):
    """Each device makes its key (the fleet's key_type) and CSR; AWS signs the certificate."""

    kind: Literal["create_certificate_from_csr"]
    set_as_active: bool = True

    scalar_field: ClassVar[str | None] = "fleet"


async def run(ctx: RunContext, step: CreateCertificateFromCsrStep) -> None:
    await for_each_device(ctx, ctx.fleet_devices(step.fleet),
                          lambda d: prov.certificate_from_csr(ctx, d, step.set_as_active),
                          step.pacing)


KIND = StepKind(CreateCertificateFromCsrStep, run, journals=(prov.CERTIFICATE,), plans=True,
                phase="api")
