"""`attach_policy`: attach a (possibly per-device) policy to each device's certificate."""

from __future__ import annotations

from typing import Literal

from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import Template


class AttachPolicyStep(FleetStep):
    kind: Literal["attach_policy"]
    policy: str

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return template_problems((*at, "policy"), self.policy, DEVICE_NAMES)


async def run(ctx: RunContext, step: AttachPolicyStep) -> None:
    name_t = Template(step.policy, DEVICE_NAMES)
    await for_each_device(ctx, ctx.fleet_devices(step.fleet),
                          lambda d: prov.attach_policy(ctx, d, name_t.render(d.names)),
                          step.pacing)


KIND = StepKind(AttachPolicyStep, run, journals=(prov.POLICY_ATTACHMENT,), plans=True, phase="api")
