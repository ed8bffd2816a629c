"""`provision`: the whole of "provisioning with the API", per device."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.describe import policy_targets
from fleetsim.engine.fanout import PACED_STARTS, StepFailed, for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.engine.stored import stored_state
from fleetsim.scenario.model import FleetStep
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import Template


class ProvisionStep(FleetStep):
    """The whole of "provisioning with the API" per device: thing, certificate (from a CSR by
    default, so the fleet's key_type holds), policy attached to it, certificate attached to
    the thing. Devices with a stored identity still live (a persistent fleet's, or an earlier
    kept run's) are reused."""

    kind: Literal["provision"]
    certificate: Literal["csr", "keys_and_certificate"] = "csr"
    policy: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    thing_type: str | None = None

    scalar_field: ClassVar[str | None] = "fleet"

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        if not self.policy:
            return []
        return template_problems((*at, "policy"), self.policy, DEVICE_NAMES)


async def run(ctx: RunContext, step: ProvisionStep) -> None:
    policy_t = Template(step.policy, DEVICE_NAMES) if step.policy else None

    async def one(d: Device) -> None:
        if await prov.reuse_stored(ctx, d):
            # Its thing is there (reuse_stored saw it): described only for what it declares.
            if step.attributes or step.thing_type:
                await prov.create_thing(ctx, d, step.attributes, step.thing_type)
            else:
                ctx.reconcile.reuse(prov.THING.name, d.thing_name)
            if policy_t is not None:
                await prov.attach_policy(ctx, d, policy_t.render(d.names))
            return
        await prov.create_thing(ctx, d, step.attributes, step.thing_type)
        if step.certificate == "csr":  # the stored identity was looked at above
            await prov.certificate_from_csr(ctx, d, True, reuse=False)
        else:
            await prov.keys_and_certificate(ctx, d, True, reuse=False)
        if policy_t is not None:
            await prov.attach_policy(ctx, d, policy_t.render(d.names))
        await prov.attach_thing_principal(ctx, d)

    devices = ctx.fleet_devices(step.fleet)
    rest = devices if step.attributes or step.thing_type else await _reuse_vouched(
        ctx, devices, policy_t)
    if rest is not devices and step.pacing is not None:  # started, as for_each_device counts
        ctx.metrics.incr(PACED_STARTS, len(devices) - len(rest))
    try:
        await for_each_device(ctx, rest, one, step.pacing)
    except StepFailed:
        if len(rest) == len(devices):
            raise
        # Not every device failed: the ones reused at once did not.


async def _reuse_vouched(ctx: RunContext, devices: list[Device],
                         policy_t: Template | None) -> list[Device]:
    """Devices whose stored identity the journals and one listing vouch for, reused at once
    with no call of their own (`prov.reuse_vouched`); the others, as they come. Only when a
    journal holds attachments (persistent fleets, kept runs) and nothing else is declared."""
    state = await stored_state(ctx)
    if not state.attached:
        return devices
    if policy_t is None:
        return prov.reuse_vouched(ctx, devices, state, {}, None)
    if policy_t.constant:  # one policy for all (rendered once, not 10,000 times)
        policy = policy_t.render({})
        policies = {policy: await policy_targets(ctx, policy)}
        return prov.reuse_vouched(ctx, devices, state, policies, lambda _: policy)
    names = {d.thing_name: policy_t.render(d.names) for d in devices}
    policies = {policy: await policy_targets(ctx, policy) for policy in set(names.values())}
    return prov.reuse_vouched(ctx, devices, state, policies, lambda d: names[d.thing_name])


KIND = StepKind(ProvisionStep, run, journals=(prov.THING, prov.CERTIFICATE,
                                             prov.POLICY_ATTACHMENT, prov.THING_PRINCIPAL),
                plans=True, phase="api")
