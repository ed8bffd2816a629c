"""Provisioning one device through the API, as the workshop lab does it by hand. Every
resource is journaled (in the run's journal, or the fleet's persistent one) once created."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from fleetsim.control.cleanup import GONE, JournalKind, Phase, error_code, with_retry
from fleetsim.control.clients import AwsClients
from fleetsim.control.errors import ApiError
from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import api_call

# ---- what provisioning journals, and how clean-up undoes it --------------------------------


async def _delete_certificate(clients: AwsClients, d: dict[str, Any]) -> None:
    try:
        await clients.iot.update_certificate(certificateId=d["id"], newStatus="INACTIVE")
    except ClientError as e:
        if error_code(e) not in GONE:
            raise
    await with_retry(lambda: clients.iot.delete_certificate(certificateId=d["id"],
                                                            forceDelete=True))


THING = JournalKind("thing", Phase.DELETE,
                    lambda c, d: c.iot.delete_thing(thingName=d["name"]))
CERTIFICATE = JournalKind("certificate", Phase.CERTIFICATES, _delete_certificate)
POLICY_ATTACHMENT = JournalKind(
    "policy_attachment", Phase.DETACH,
    lambda c, d: c.iot.detach_policy(policyName=d["policy"], target=d["target"]))
THING_PRINCIPAL = JournalKind(
    "thing_principal", Phase.DETACH,
    lambda c, d: c.iot.detach_thing_principal(thingName=d["thing"], principal=d["principal"]))
POLICY = JournalKind("policy", Phase.DELETE,
                     lambda c, d: with_retry(lambda: c.iot.delete_policy(policyName=d["name"])))
# What a provisioning template can make for a device, as journal kinds.
REGISTERED = (THING, CERTIFICATE, THING_PRINCIPAL, POLICY_ATTACHMENT, POLICY)
KEYS_OP = "provision.keys"  # a device's key and CSR made
CERTIFICATE_OP = "provision.certificate"  # from a device's start until it holds a certificate


async def create_thing(ctx: RunContext, d: Device, attributes: dict[str, str],
                       thing_type: str | None) -> None:
    params: dict[str, Any] = {"thingName": d.thing_name}
    if attributes:
        params["attributePayload"] = {"attributes": attributes}
    if thing_type:
        params["thingTypeName"] = thing_type
    await api_call(ctx, "CreateThing", d.thing_name, **params)
    ctx.journal_for(d.fleet).record(THING.name, name=d.thing_name)


def _certificate_created(ctx: RunContext, d: Device, out: dict[str, Any]) -> None:
    ctx.journal_for(d.fleet).record(CERTIFICATE.name, id=out["certificateId"],
                                    arn=out["certificateArn"])
    d.certificate_id, d.certificate_arn = out["certificateId"], out["certificateArn"]


async def keys_and_certificate(ctx: RunContext, d: Device, set_as_active: bool) -> None:
    """create-keys-and-certificate: the service makes the key (RSA-2048 on AWS)."""
    out = await api_call(ctx, "CreateKeysAndCertificate", d.thing_name,
                         setAsActive=set_as_active)
    _certificate_created(ctx, d, out)
    d.identity = dev.save_identity(ctx, d, out["keyPair"]["PrivateKey"].encode(),
                                   out["certificatePem"])


async def certificate_from_csr(ctx: RunContext, d: Device, set_as_active: bool) -> None:
    """The device makes its own key (the fleet's key_type) and CSR; the key never leaves it."""
    identity = await ctx.keys.new_identity(d.fleet.name, d.index, d.thing_name,
                                           d.fleet.key_type)
    out = await api_call(ctx, "CreateCertificateFromCsr", d.thing_name,
                         certificateSigningRequest=identity.csr_pem().decode(),
                         setAsActive=set_as_active)
    _certificate_created(ctx, d, out)
    d.identity = dev.save_identity(ctx, d, identity.private_key_pem, out["certificatePem"])


async def attach_policy(ctx: RunContext, d: Device, policy: str) -> None:
    arn = dev.require_certificate(d)
    await api_call(ctx, "AttachPolicy", d.thing_name, policyName=policy, target=arn)
    ctx.journal_for(d.fleet).record(POLICY_ATTACHMENT.name, policy=policy, target=arn)


async def attach_thing_principal(ctx: RunContext, d: Device) -> None:
    arn = dev.require_certificate(d)
    await api_call(ctx, "AttachThingPrincipal", d.thing_name, thingName=d.thing_name,
                   principal=arn)
    ctx.journal_for(d.fleet).record(THING_PRINCIPAL.name, thing=d.thing_name,
                                    principal=arn)


async def reuse_stored(ctx: RunContext, d: Device) -> bool:
    """A persistent device whose stored certificate is still ACTIVE and attached to its thing
    in the registry is ready as it is; anything less is provisioned again."""
    identity = dev.load_identity(ctx, d)
    if identity is None or identity.certificate_id is None:
        return False
    try:
        cert = await api_call(ctx, "DescribeCertificate", d.thing_name,
                              certificateId=identity.certificate_id)
        principals = await api_call(ctx, "ListThingPrincipals", d.thing_name,
                                    thingName=d.thing_name)
    except ApiError as e:
        if e.code == "ResourceNotFoundException":
            return False
        raise
    arn = cert["certificateDescription"]["certificateArn"]
    if cert["certificateDescription"]["status"] != "ACTIVE" or arn not in principals["principals"]:
        return False
    d.identity, d.certificate_id, d.certificate_arn = identity, identity.certificate_id, arn
    ctx.metrics.incr("identities.reused")
    return True


# ---- provisioning by template: what register-thing, a bulk task or a claim created ---------

async def new_key_and_csr(ctx: RunContext, d: Device) -> tuple[bytes, str]:
    """The device's own key (the fleet's key_type) and a CSR for it, timed `provision.keys`.
    The key never leaves the device."""
    with ctx.metrics.time(KEYS_OP):
        identity = await ctx.keys.new_identity(d.fleet.name, d.index, d.thing_name,
                                               d.fleet.key_type)
        return identity.private_key_pem, identity.csr_pem().decode()


def resource_names(arns: dict[str, str]) -> dict[str, list[str]]:
    """`resourceArns` (by the template's logical names) by resource type: `thing` names,
    `cert` ids, `policy` names. AWS IoT ARNs are `arn:aws:iot:REGION:ACCOUNT:TYPE/NAME`."""
    by_type: dict[str, list[str]] = {}
    for arn in arns.values():
        resource = arn.split(":", 5)[-1]
        kind, _, name = resource.partition("/")
        by_type.setdefault(kind, []).append(name)
    return by_type


def journal_registered(ctx: RunContext, d: Device, arns: dict[str, str],
                       certificate_journaled: bool = False) -> None:
    """Journal what a template made for `d` (thing, certificate, policy, and the attachments
    between them, which AWS makes as the template's resources are created) so clean-up
    removes it; the device takes the certificate as its identity's."""
    journal = ctx.journal_for(d.fleet)
    names = resource_names(arns)
    certificate_arn = next((a for a in arns.values() if ":cert/" in a), None)
    for cert_id in [] if certificate_journaled else names.get("cert", []):
        journal.record(CERTIFICATE.name, id=cert_id, arn=certificate_arn)
    for thing in names.get("thing", []):
        journal.record(THING.name, name=thing)
        if certificate_arn:
            journal.record(THING_PRINCIPAL.name, thing=thing, principal=certificate_arn)
    for policy in names.get("policy", []):
        if certificate_arn:
            journal.record(POLICY_ATTACHMENT.name, policy=policy, target=certificate_arn)
        # A policy made from a PolicyDocument alone may be shared: journaled once.
        if ("policy", policy) not in ctx.journaled:
            ctx.journaled.add(("policy", policy))
            journal.record(POLICY.name, name=policy)
    d.certificate_arn = certificate_arn
    d.certificate_id = names["cert"][0] if names.get("cert") else None
