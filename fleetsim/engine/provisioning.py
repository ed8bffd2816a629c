"""Provisioning one device through the API, as the workshop lab does it by hand.

Every resource is journaled (in the run's journal, or the fleet's persistent one) *before*
the call that creates it, so a kill -9 during the call leaves nothing cleanup cannot find:
things, policies and attachments by name; a certificate by the public key of its CSR, known
before the call, among the certificates created since (see `find_certificates`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from fleetsim.control.cleanup import GONE, JournalKind, Phase, error_code, with_retry
from fleetsim.control.clients import AwsClients
from fleetsim.control.errors import ApiError
from fleetsim.control.journal import Journal
from fleetsim.device import DeviceIdentity
from fleetsim.device.identity import remove_identity
from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.stored import stored_state
from fleetsim.pki import load_certificate, load_private_key, public_key_id

T = TypeVar("T")
NOT_FOUND = frozenset({"ResourceNotFoundException"})
# Clock skew and second-granular creation dates: certificates created this long before the
# first interrupted call are looked at too.
WINDOW_SLACK_S = 60.0

# ---- what provisioning journals, and how clean-up undoes it --------------------------------


async def _delete_certificate(clients: AwsClients, d: dict[str, Any]) -> None:
    """Deactivated, then deleted; its identity files go with it (gone remotely: gone from
    disk too). A certificate already gone raises its ResourceNotFoundException."""
    try:
        await clients.iot.update_certificate(certificateId=d["id"], newStatus="INACTIVE")
        deleted = await with_retry(lambda: clients.iot.delete_certificate(
            certificateId=d["id"], forceDelete=True))
    except ClientError as e:
        if error_code(e) in GONE and d.get("identity"):
            remove_identity(Path(d["identity"]), d["id"])
        raise
    if d.get("identity"):
        remove_identity(Path(d["identity"]), d["id"])
    if not deleted:
        raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                     "Message": f"certificate {d['id']} is gone"}},
                          "DeleteCertificate")


async def find_certificates(clients: AwsClients, entries: list[dict[str, Any]]
                            ) -> list[dict[str, Any]]:
    """Certificate entries with an id, plus the certificates that calls written down before
    they were made (public key, time, no id) did create: among the certificates created since
    the earliest such call, those whose public key is one of theirs (API reference,
    "ListCertificates": each certificate's `creationDate`; "DescribeCertificate": its
    `certificatePem`)."""
    done = [d for d in entries if "id" in d]
    have = {d.get("public_key") for d in done}
    wanted = {d["public_key"]: d for d in entries
              if "id" not in d and d.get("public_key") and d["public_key"] not in have}
    if not wanted:
        return done
    since = min(float(d.get("at", 0)) for d in wanted.values()) - WINDOW_SLACK_S
    known = {d["id"] for d in done}
    candidates: list[str] = []
    paginator = clients.iot.get_paginator("list_certificates")
    async for page in paginator.paginate(pageSize=250):
        candidates += [c["certificateId"] for c in page["certificates"]
                       if c["creationDate"].timestamp() >= since
                       and c["certificateId"] not in known]
    limit = asyncio.Semaphore(16)

    async def match(cert_id: str) -> dict[str, Any] | None:
        async with limit:
            try:
                out = await clients.iot.describe_certificate(certificateId=cert_id)
            except ClientError as e:
                if error_code(e) in GONE:
                    return None
                raise
        desc = out["certificateDescription"]
        key = public_key_id(load_certificate(desc["certificatePem"].encode()).public_key())
        if key not in wanted:
            return None
        return {"id": cert_id, "arn": desc["certificateArn"], "public_key": key,
                "identity": wanted[key].get("identity")}

    found = await asyncio.gather(*(match(c) for c in candidates))
    return done + [f for f in found if f is not None]


THING = JournalKind("thing", Phase.DELETE,
                    lambda c, d: c.iot.delete_thing(thingName=d["name"]))
CERTIFICATE = JournalKind("certificate", Phase.CERTIFICATES, _delete_certificate,
                          resolve=find_certificates)
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


def refused(e: ApiError) -> bool:
    """The service answered the call with a client error: it created nothing."""
    cause = e.__cause__
    if not isinstance(cause, ClientError):
        return False  # no answer (a timeout, a dropped connection): it may have
    status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    return bool(400 <= int(status) < 500)


async def journaled(journal: Journal, kind: str, data: dict[str, Any],
                    call: Awaitable[T]) -> T:
    """`call`, written down as `kind` with `data` before it is made (and voided if refused)."""
    journal.record(kind, **data)
    try:
        return await call
    except ApiError as e:
        if refused(e):
            journal.void(kind, **data)
        raise


async def create_thing(ctx: RunContext, d: Device, attributes: dict[str, str],
                       thing_type: str | None) -> None:
    """Journaled by name before the call. (API reference, "CreateThing": made again with the
    same name and configuration, it succeeds; with another configuration it answers
    ResourceAlreadyExistsException, which voids the entry: the thing is not ours.)"""
    params: dict[str, Any] = {"thingName": d.thing_name}
    if attributes:
        params["attributePayload"] = {"attributes": attributes}
    if thing_type:
        params["thingTypeName"] = thing_type
    await journaled(ctx.journal_for(d.fleet), THING.name, {"name": d.thing_name},
                    api_call(ctx, "CreateThing", d.thing_name, **params))


def identity_base(ctx: RunContext, fleet: str, name: str) -> str:
    """Where the identity files of `name` live, without suffix (cleanup removes them)."""
    return str((ctx.identities_dir / fleet / name).resolve())


async def issue_certificate(ctx: RunContext, journal: Journal, identity: DeviceIdentity,
                            subject: str, set_as_active: bool = True,
                            remove_files: bool = True) -> dict[str, Any]:
    """create-certificate-from-csr for `identity`'s key, journaled by that key's public key
    before the call and by certificate id after it; with `remove_files`, cleanup removes the
    identity's files with the certificate."""
    key = public_key_id(load_private_key(identity.private_key_pem).public_key())
    base = identity_base(ctx, identity.fleet, identity.thing_name) if remove_files else None
    out = await journaled(
        journal, CERTIFICATE.name, {"public_key": key, "at": time.time(), "identity": base},
        api_call(ctx, "CreateCertificateFromCsr", subject,
                 certificateSigningRequest=identity.csr_pem().decode(),
                 setAsActive=set_as_active))
    journal.record(CERTIFICATE.name, id=out["certificateId"], arn=out["certificateArn"],
                   public_key=key, identity=base)
    return out


async def keys_and_certificate(ctx: RunContext, d: Device, set_as_active: bool) -> None:
    """create-keys-and-certificate: the service makes the key (RSA-2048 on AWS), so the
    certificate is known only once the call returns: a call interrupted by a kill -9 may
    leave one certificate that cleanup cannot tell from others (use a CSR to avoid that)."""
    journal = ctx.journal_for(d.fleet)
    base = identity_base(ctx, d.fleet.name, d.thing_name)
    out = await api_call(ctx, "CreateKeysAndCertificate", d.thing_name,
                         setAsActive=set_as_active)
    journal.record(CERTIFICATE.name, id=out["certificateId"], arn=out["certificateArn"],
                   identity=base)
    d.certificate_id, d.certificate_arn = out["certificateId"], out["certificateArn"]
    d.identity = dev.save_identity(ctx, d, out["keyPair"]["PrivateKey"].encode(),
                                   out["certificatePem"])


async def certificate_from_csr(ctx: RunContext, d: Device, set_as_active: bool) -> None:
    """The device makes its own key (the fleet's key_type) and CSR; the key never leaves it."""
    identity = await ctx.keys.new_identity(d.fleet.name, d.index, d.thing_name,
                                           d.fleet.key_type)
    out = await issue_certificate(ctx, ctx.journal_for(d.fleet), identity, d.thing_name,
                                  set_as_active)
    d.certificate_id, d.certificate_arn = out["certificateId"], out["certificateArn"]
    d.identity = dev.save_identity(ctx, d, identity.private_key_pem, out["certificatePem"])


async def attach_policy(ctx: RunContext, d: Device, policy: str) -> None:
    arn = dev.require_certificate(d)
    await journaled(ctx.journal_for(d.fleet), POLICY_ATTACHMENT.name,
                    {"policy": policy, "target": arn},
                    api_call(ctx, "AttachPolicy", d.thing_name, policyName=policy, target=arn))


async def attach_thing_principal(ctx: RunContext, d: Device) -> None:
    arn = dev.require_certificate(d)
    await journaled(ctx.journal_for(d.fleet), THING_PRINCIPAL.name,
                    {"thing": d.thing_name, "principal": arn},
                    api_call(ctx, "AttachThingPrincipal", d.thing_name,
                             thingName=d.thing_name, principal=arn))


async def reuse_stored(ctx: RunContext, d: Device) -> bool:
    """A persistent device whose stored certificate is still ACTIVE and attached to its thing
    in the registry is ready as it is (counted as `identities.reused`); anything less (its
    certificate or thing gone, e.g. removed by hand) is provisioned again, counted as
    `identities.reprovisioned`: an expected state, not an error. Checked in bulk when the
    persistent journal vouches for the attachment (engine/stored.py), else per device."""
    identity = dev.load_identity(ctx, d)
    if identity is None or identity.certificate_id is None:
        return False
    state = await stored_state(ctx)
    if state.known(d.thing_name, identity.certificate_arn):
        ready, arn = state.active(identity.certificate_id), identity.certificate_arn
    else:
        ready, arn = await _describe_stored(ctx, d, identity.certificate_id)
    if not ready:
        ctx.metrics.incr("identities.reprovisioned")
        return False
    d.identity, d.certificate_id, d.certificate_arn = identity, identity.certificate_id, arn
    ctx.metrics.incr("identities.reused")
    return True


async def _describe_stored(ctx: RunContext, d: Device,
                           certificate_id: str) -> tuple[bool, str | None]:
    """Whether the certificate is ACTIVE and attached to the device's thing, asked per device;
    and its ARN."""
    try:
        cert = await api_call(ctx, "DescribeCertificate", d.thing_name, expected=NOT_FOUND,
                              certificateId=certificate_id)
        principals = await api_call(ctx, "ListThingPrincipals", d.thing_name,
                                    expected=NOT_FOUND, thingName=d.thing_name)
    except ApiError as e:
        if e.code not in NOT_FOUND:
            raise
        return False, None
    arn = cert["certificateDescription"]["certificateArn"]
    ready = (cert["certificateDescription"]["status"] == "ACTIVE"
             and arn in principals["principals"])
    return ready, arn


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
