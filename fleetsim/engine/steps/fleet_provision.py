"""`fleet_provision`: fleet provisioning by claim. Each device connects with the shared claim
certificate, gets its own certificate over MQTT (CreateCertificateFromCsr with a key it made,
or CreateKeysAndCertificate), registers its thing with the provisioning template
(RegisterThing with the certificate's ownership token and the template's parameters) and
disconnects; a later `connect` step connects it with its new identity. The thing is named as
the template names it. A device whose identity an earlier kept run stored (found by its index,
as the thing is named by the template) is reused while still live: no claim, no call; when
every device is, not even the claim certificate is made."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from fleetsim.device import DeviceError, DeviceIdentity, DeviceSession, IdentityStore
from fleetsim.device.behaviours.claim import ClaimClient
from fleetsim.engine import claim
from fleetsim.engine import devices as dev
from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.quotas import connect_pacing
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import Duration, FleetStep, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate


class FleetProvisionStep(FleetStep):
    kind: Literal["fleet_provision"]
    template: str  # the provisioning template's name
    parameters: dict[str, str] = Field(default_factory=dict)  # templates per device
    certificate: Literal["csr", "keys_and_certificate"] = "csr"
    # The claim certificate: made by the step with this policy attached, or read from files.
    claim_policy: str | None = None
    claim_certificate: str | None = None
    claim_key: str | None = None
    timeout: Duration = 10.0

    file_fields: ClassVar[tuple[str, ...]] = ("claim_certificate", "claim_key")
    _duration = field_validator("timeout", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        problems = template_problems((*at, "parameters"), self.parameters, DEVICE_NAMES)
        files = self.claim_certificate is not None, self.claim_key is not None
        if (self.claim_policy is not None) == any(files) or any(files) != all(files):
            problems.append((at, "give either 'claim_policy' (the step makes the claim "
                                 "certificate) or both 'claim_certificate' and 'claim_key'"))
        return problems


async def _claim_identity(ctx: RunContext, step: FleetProvisionStep) -> DeviceIdentity:
    if step.claim_policy is not None:
        return await claim.made(ctx, step.claim_policy)
    assert step.claim_certificate is not None and step.claim_key is not None
    return claim.from_files(Path(step.claim_certificate), Path(step.claim_key))


async def _reused(ctx: RunContext, devices: list[Device]) -> list[Device]:
    """The devices still to provision: each one whose stored identity (by index: the
    template named its thing) is still live takes that identity's thing name and is reused."""
    if not devices:
        return devices
    store = IdentityStore(ctx.identities_dir, devices[0].fleet.name)
    stored = {i.index: i.thing_name for i in store.load_all()} \
        if store.directory.is_dir() else {}
    left = []
    for d in devices:
        name = stored.get(d.index)
        if name is not None:
            declared, d.thing_name = d.thing_name, name
            if await prov.reuse_registered(ctx, d):
                continue
            d.thing_name = declared
        left.append(d)
    return left


async def run(ctx: RunContext, step: FleetProvisionStep) -> None:
    devices = await _reused(ctx, ctx.fleet_devices(step.fleet))
    if not devices:
        return
    identity = await _claim_identity(ctx, step)
    tls = dev.tls_factory(ctx).for_identity(identity)
    account = (await api_call(ctx, "GetCallerIdentity", client=ctx.sts))["Account"]
    arn = f"arn:aws:iot:{ctx.target.region}:{account}"
    params_t = StructTemplate(step.parameters, DEVICE_NAMES)
    template = await describe(ctx, "DescribeProvisioningTemplate", step.template,
                              templateName=step.template)
    package_shadow = template is not None and prov.sets_package_versions(
        template.get("templateBody", ""))

    async def one(d: Device) -> None:
        started = time.perf_counter()
        # A thing the template names as the device is named may be there already (AWS's
        # template provisioning uses it): reused, not counted as created.
        declared = d.thing_name
        found = await describe(ctx, "DescribeThing", declared, thingName=declared)
        key_pem, csr = await prov.new_key_and_csr(ctx, d) if step.certificate == "csr" \
            else (None, None)
        session = DeviceSession(identity, ctx.target, ctx.metrics, tls=tls,
                                client_id=d.thing_name, timeout=step.timeout)
        try:
            await session.__aenter__()
        except DeviceError as e:
            raise UserError(f"{d.thing_name} could not connect with the claim certificate "
                            f"({e.kind})") from e
        try:
            client = ClaimClient(session, ctx.metrics, step.timeout)
            session.on_message(lambda m: client.on_message(str(m.topic), _bytes(m.payload)))
            created = await client.create_certificate(csr)
            cert_arn = f"{arn}:cert/{created.certificate_id}"
            ctx.journal_for(d.fleet).record(prov.CERTIFICATE.name, id=created.certificate_id,
                                            arn=cert_arn)
            registered = await client.register_thing(
                step.template, created.token,
                {k: str(v) for k, v in params_t.render(d.names).items()})
        except DeviceError as e:
            raise UserError(f"{d.thing_name}: fleet provisioning by claim failed: {e}") from e
        finally:
            await session.__aexit__(None, None, None)
        d.thing_name = registered.thing_name
        policies = await api_call(ctx, "ListAttachedPolicies", d.thing_name, target=cert_arn)
        await prov.journal_registered(ctx, d, {
            "thing": f"{arn}:thing/{registered.thing_name}", "certificate": cert_arn,
            **{f"policy{n}": p["policyArn"] for n, p in enumerate(policies["policies"])}},
            certificate_journaled=True, found_things=frozenset({declared} if found else ()),
            package_shadow=package_shadow)
        key = key_pem if key_pem is not None else (created.private_key_pem or "").encode()
        # its files go when clean-up has removed the certificate (journaled above, before
        # the thing's name was known)
        ctx.journal_for(d.fleet).record(
            prov.IDENTITY_FILES.name, id=created.certificate_id,
            identity=prov.identity_base(ctx, d.fleet.name, d.thing_name))
        d.identity = dev.save_identity(ctx, d, key, created.certificate_pem)
        ctx.metrics.record(prov.CERTIFICATE_OP, (time.perf_counter() - started) * 1e6)

    await for_each_device(ctx, devices, one,
                          connect_pacing(ctx.scenario.target, ctx.shards, step.pacing))


def _bytes(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else str(payload or "").encode()


KIND = StepKind(FleetProvisionStep, run, journals=(*prov.REGISTERED, prov.IDENTITY_FILES))
