"""`register_thing`: each device is provisioned by one register-thing call with a template,
as in the workshop's "Single Device Provisioning" lab: the device makes its key and a CSR,
the template's parameters are rendered per device, the certificate returned becomes its own.
A device with a stored identity still live (an earlier kept run's) is reused: no call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from fleetsim.engine import devices as dev
from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate


class RegisterThingStep(FleetStep):
    """register-thing per device: `template` is a template body file (relative to the
    scenario), `parameters` its parameters (templates per device); the device's CSR is passed
    as the parameter named `csr_parameter`."""

    kind: Literal["register_thing"]
    template: str
    parameters: dict[str, str] = Field(default_factory=dict)
    csr_parameter: str = "CSR"

    file_fields: ClassVar[tuple[str, ...]] = ("template",)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return template_problems((*at, "parameters"), self.parameters, DEVICE_NAMES)


async def run(ctx: RunContext, step: RegisterThingStep) -> None:
    body = Path(step.template).read_text()
    package_shadow = prov.sets_package_versions(body)
    params_t = StructTemplate(step.parameters, DEVICE_NAMES)

    async def one(d: Device) -> None:
        if await prov.reuse_registered(ctx, d):
            return
        started = time.perf_counter()
        key_pem, csr = await prov.new_key_and_csr(ctx, d)
        parameters = {k: str(v) for k, v in params_t.render(d.names).items()}
        parameters[step.csr_parameter] = csr
        found = await describe(ctx, "DescribeThing", d.thing_name, thingName=d.thing_name)
        out = await api_call(ctx, "RegisterThing", d.thing_name, templateBody=body,
                             parameters=parameters)
        await prov.journal_registered(ctx, d, out.get("resourceArns", {}),
                                found_things=frozenset({d.thing_name} if found else ()),
                                package_shadow=package_shadow)
        d.identity = dev.save_identity(ctx, d, key_pem, out["certificatePem"])
        ctx.metrics.record(prov.CERTIFICATE_OP, (time.perf_counter() - started) * 1e6)

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), one, step.pacing)


KIND = StepKind(RegisterThingStep, run, journals=prov.REGISTERED, phase="api")
