"""Provisioning one device through the API, as the workshop lab does it by hand.

Every resource is journaled (in the run's journal, or the fleet's persistent one) *before*
the call that creates it, so a kill -9 during the call leaves nothing cleanup cannot find:
things, policies and attachments by name; a certificate by the public key of its CSR, known
before the call, among the certificates created since (see `find_certificates`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from fleetsim import pki  # cryptography, imported at the first use of its names
from fleetsim.control.cleanup import GONE, JournalKind, Phase, error_code, retried, with_retry
from fleetsim.control.clients import AwsClients
from fleetsim.control.errors import ApiError
from fleetsim.control.journal import Journal
from fleetsim.device import DeviceIdentity
from fleetsim.device.identity import remove_identity
from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.describe import describe, policy_targets
from fleetsim.engine.fanout import api_call
from fleetsim.engine.reconcile import attribute_items, short, value_item
from fleetsim.engine.shadow_journal import SHADOW
from fleetsim.engine.stored import StoredState, stored_state
from fleetsim.errors import UserError

T = TypeVar("T")
# Clock skew and second-granular creation dates: certificates created this long before the
# first interrupted call are looked at too.
WINDOW_SLACK_S = 60.0
CLOCK_SLACK_S = 2.0  # between this machine's clock and the service's

# ---- what provisioning journals, and how clean-up undoes it --------------------------------


async def _delete_certificate(clients: AwsClients, d: dict[str, Any]) -> None:
    """Detached from its things and policies, deactivated, then deleted ("DeleteCertificate":
    a certificate is not deleted while a policy or thing is attached to it or while it is
    ACTIVE); its identity files go with it (gone remotely: gone from disk too). A certificate
    already gone raises its ResourceNotFoundException."""
    iot = clients.iot
    try:
        arn = d.get("arn") or (await iot.describe_certificate(certificateId=d["id"])
                               )["certificateDescription"]["certificateArn"]
        await detach_principal(clients, arn)
        await iot.update_certificate(certificateId=d["id"], newStatus="INACTIVE")
        deleted = await with_retry(lambda: iot.delete_certificate(
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


async def detach_principal(clients: AwsClients, arn: str) -> None:
    """Every thing (ListPrincipalThings) and policy (ListAttachedPolicies) off a certificate."""
    iot = clients.iot
    async for page in iot.get_paginator("list_principal_things").paginate(principal=arn):
        for thing in page.get("things", []):
            await retried(iot.detach_thing_principal, thingName=thing, principal=arn)
    async for page in iot.get_paginator("list_attached_policies").paginate(target=arn):
        for policy in page.get("policies", []):
            await retried(iot.detach_policy, policyName=policy["policyName"], target=arn)


async def _delete_thing(clients: AwsClients, d: dict[str, Any]) -> None:
    """Its principals detached (ListThingPrincipals), then the thing."""
    iot, name = clients.iot, d["name"]
    async for page in iot.get_paginator("list_thing_principals").paginate(thingName=name):
        for principal in page.get("principals", []):
            await retried(iot.detach_thing_principal, thingName=name, principal=principal)
    await iot.delete_thing(thingName=name)


async def _delete_policy(clients: AwsClients, d: dict[str, Any]) -> None:
    """Its non-default versions deleted, then the policy ("DeletePolicy": a policy is deleted
    only once it is attached to nothing and has no version but the default). The run's own
    attachments were undone before (their journal entries); one it did not make (another
    shard's or run's device still using the policy) is left alone, and the delete retried
    then reported (DeleteConflictException), unless the policy was named for removal
    (`cleanup --prefix`: `detach_all`, detached from every target, ListTargetsForPolicy)."""
    iot, name = clients.iot, d["name"]
    if d.get("detach_all"):
        async for page in iot.get_paginator("list_targets_for_policy").paginate(
                policyName=name):
            for target in page.get("targets", []):
                await retried(iot.detach_policy, policyName=name, target=target)
    versions = (await iot.list_policy_versions(policyName=name)).get("policyVersions", [])
    for v in versions:
        if not v.get("isDefaultVersion"):
            await retried(iot.delete_policy_version, policyName=name,
                          policyVersionId=v["versionId"])
    await with_retry(lambda: iot.delete_policy(policyName=name))


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
        key = pki.public_key_id(pki.load_certificate(desc["certificatePem"].encode())
                                .public_key())
        if key not in wanted:
            return None
        return {"id": cert_id, "arn": desc["certificateArn"], "public_key": key,
                "identity": wanted[key].get("identity")}

    found = await asyncio.gather(*(match(c) for c in candidates))
    return done + [f for f in found if f is not None]


THING = JournalKind("thing", Phase.DELETE, _delete_thing)
CERTIFICATE = JournalKind("certificate", Phase.CERTIFICATES, _delete_certificate,
                          resolve=find_certificates)
POLICY_ATTACHMENT = JournalKind(
    "policy_attachment", Phase.DETACH,
    lambda c, d: c.iot.detach_policy(policyName=d["policy"], target=d["target"]))
THING_PRINCIPAL = JournalKind(
    "thing_principal", Phase.DETACH,
    lambda c, d: c.iot.detach_thing_principal(thingName=d["thing"], principal=d["principal"]))
POLICY = JournalKind("policy", Phase.DELETE, _delete_policy)


async def _remove_identity_files(clients: AwsClients, d: dict[str, Any]) -> None:
    """A device's identity files, once what removes its certificate has run (a JIT device's
    certificate goes with its CA, `register_ca`): they still hold that certificate."""
    remove_identity(Path(d["identity"]), d["id"])


# The files of an identity whose certificate another entry removes (JIT: the CA's).
IDENTITY_FILES = JournalKind("identity_files", Phase.DELETE, _remove_identity_files)
# What a provisioning template can make for a device, as journal kinds.
REGISTERED = (THING, CERTIFICATE, THING_PRINCIPAL, POLICY_ATTACHMENT, POLICY)
PACKAGE_SHADOW = "$package"  # the reserved named shadow of a thing's package versions
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
    """The thing as declared: described first (DescribeThing); absent, created (journaled
    by name before the call); present with the attributes and type declared, reused; else
    its drift (an attribute missing or different, another type) is fixed with UpdateThing,
    which merges the attributes given (API reference, "UpdateThing": `merge`)."""
    journal = ctx.journal_for(d.fleet)
    ledger = ctx.reconcile
    have = await describe(ctx, "DescribeThing", d.thing_name, thingName=d.thing_name)
    if have is None:
        if not ledger.plan:
            params: dict[str, Any] = {"thingName": d.thing_name}
            if attributes:
                params["attributePayload"] = {"attributes": attributes}
            if thing_type:
                params["thingTypeName"] = thing_type
            await journaled(journal, THING.name, {"name": d.thing_name},
                            api_call(ctx, "CreateThing", d.thing_name, **params))
        ledger.create(THING.name, d.thing_name, journal is ctx.journal)
        ledger.fresh_thing(d.thing_name)  # planning too: what hangs off it is created
        return
    items = attribute_items(attributes, have.get("attributes") or {})
    if thing_type:
        items += value_item("thing type", have.get("thingTypeName"), thing_type)
    if not items:
        ledger.reuse(THING.name, d.thing_name)
        return
    ledger.drifted(THING.name, d.thing_name, items)
    if ledger.plan:
        return
    update: dict[str, Any] = {"thingName": d.thing_name,
                              "attributePayload": {"attributes": attributes, "merge": True}}
    if thing_type:
        update["thingTypeName"] = thing_type
    await api_call(ctx, "UpdateThing", d.thing_name, **update)


def identity_base(ctx: RunContext, fleet: str, name: str) -> str:
    """Where the identity files of `name` live, without suffix (cleanup removes them)."""
    return str((ctx.identities_dir / fleet / name).resolve())


async def issue_certificate(ctx: RunContext, journal: Journal, identity: DeviceIdentity,
                            subject: str, set_as_active: bool = True,
                            remove_files: bool = True) -> dict[str, Any]:
    """create-certificate-from-csr for `identity`'s key, journaled by that key's public key
    before the call and by certificate id after it; with `remove_files`, cleanup removes the
    identity's files with the certificate."""
    key = pki.public_key_id(pki.load_private_key(identity.private_key_pem).public_key())
    base = identity_base(ctx, identity.fleet, identity.thing_name) if remove_files else None
    out = await journaled(
        journal, CERTIFICATE.name, {"public_key": key, "at": time.time(), "identity": base},
        api_call(ctx, "CreateCertificateFromCsr", subject,
                 certificateSigningRequest=identity.csr_pem().decode(),
                 setAsActive=set_as_active))
    journal.record(CERTIFICATE.name, id=out["certificateId"], arn=out["certificateArn"],
                   public_key=key, identity=base)
    return out


def _created_certificate(ctx: RunContext, d: Device) -> None:
    """A device's new certificate (`plan`: one it would get): counted as created, and known
    to have nothing attached to it yet."""
    ctx.reconcile.create(CERTIFICATE.name, d.thing_name, ctx.journal_for(d.fleet) is ctx.journal)
    if d.certificate_arn:
        ctx.reconcile.fresh.add(d.certificate_arn)


async def keys_and_certificate(ctx: RunContext, d: Device, set_as_active: bool,
                               reuse: bool = True) -> None:
    """create-keys-and-certificate: the service makes the key (RSA-2048 on AWS), so the
    certificate is known only once the call returns: a call interrupted by a kill -9 may
    leave one certificate that cleanup cannot tell from others (use a CSR to avoid that).
    A stored identity still live (an earlier kept run's) is reused (`reuse_stored`), unless
    the caller has looked already (`reuse` False)."""
    if reuse and await reuse_stored(ctx, d):
        return
    if ctx.reconcile.plan:
        _created_certificate(ctx, d)
        return
    journal = ctx.journal_for(d.fleet)
    base = identity_base(ctx, d.fleet.name, d.thing_name)
    out = await api_call(ctx, "CreateKeysAndCertificate", d.thing_name,
                         setAsActive=set_as_active)
    journal.record(CERTIFICATE.name, id=out["certificateId"], arn=out["certificateArn"],
                   identity=base)
    d.certificate_id, d.certificate_arn = out["certificateId"], out["certificateArn"]
    d.identity = dev.save_identity(ctx, d, out["keyPair"]["PrivateKey"].encode(),
                                   out["certificatePem"])
    _created_certificate(ctx, d)


async def certificate_from_csr(ctx: RunContext, d: Device, set_as_active: bool,
                               reuse: bool = True) -> None:
    """The device makes its own key (the fleet's key_type) and CSR; the key never leaves it.
    A stored identity still live (an earlier kept run's) is reused (`reuse_stored`), unless
    the caller has looked already (`reuse` False)."""
    if reuse and await reuse_stored(ctx, d):
        return
    if ctx.reconcile.plan:
        _created_certificate(ctx, d)
        return
    identity = await ctx.keys.new_identity(d.fleet.name, d.index, d.thing_name,
                                           d.fleet.key_type)
    out = await issue_certificate(ctx, ctx.journal_for(d.fleet), identity, d.thing_name,
                                  set_as_active)
    d.certificate_id, d.certificate_arn = out["certificateId"], out["certificateArn"]
    d.identity = dev.save_identity(ctx, d, identity.private_key_pem, out["certificatePem"])
    _created_certificate(ctx, d)


def _principal_of(ctx: RunContext, d: Device) -> str | None:
    """The device's certificate ARN; None when planning and it would get one only now."""
    if ctx.reconcile.plan and d.certificate_arn is None:
        return None
    return dev.require_certificate(d)


async def attach_policy(ctx: RunContext, d: Device, policy: str) -> None:
    """`policy` attached to the device's certificate. A certificate this run made has nothing
    attached: attached (created). An earlier run's (a reused persistent identity): the
    policy's targets are listed first (once per policy and run); attached, reused; not, drift
    (`policy P: not attached to certificate ab12…`), fixed by attaching it again."""
    arn = _principal_of(ctx, d)
    journal = ctx.journal_for(d.fleet)
    if arn is not None and arn not in ctx.reconcile.fresh:
        if arn in await policy_targets(ctx, policy):
            ctx.reconcile.reuse(POLICY_ATTACHMENT.name, f"{policy} → {d.thing_name}")
            return
        ctx.reconcile.drifted(POLICY_ATTACHMENT.name, policy,
                              [f"not attached to certificate {short(arn)}"])
    else:
        ctx.reconcile.create(POLICY_ATTACHMENT.name, f"{policy} → {d.thing_name}",
                             journal is ctx.journal)
    if arn is None or ctx.reconcile.plan:
        return
    await journaled(journal, POLICY_ATTACHMENT.name, {"policy": policy, "target": arn},
                    api_call(ctx, "AttachPolicy", d.thing_name, policyName=policy, target=arn))


async def attach_thing_principal(ctx: RunContext, d: Device) -> None:
    """The device's certificate attached to its thing: as `attach_policy`, an earlier run's
    certificate is looked for among the thing's principals (ListThingPrincipals) first."""
    arn = _principal_of(ctx, d)
    journal = ctx.journal_for(d.fleet)
    if arn is not None and arn not in ctx.reconcile.fresh:
        if (await stored_state(ctx)).known(d.thing_name, arn):  # a journal vouches for it
            ctx.reconcile.reuse(THING_PRINCIPAL.name, d.thing_name)
            return
        have = await describe(ctx, "ListThingPrincipals", d.thing_name, thingName=d.thing_name)
        if have is not None and arn in have.get("principals", []):
            ctx.reconcile.reuse(THING_PRINCIPAL.name, d.thing_name)
            return
        ctx.reconcile.drifted(THING_PRINCIPAL.name, d.thing_name,
                              [f"certificate {short(arn)} is not attached"])
    else:
        ctx.reconcile.create(THING_PRINCIPAL.name, d.thing_name, journal is ctx.journal)
    if arn is None or ctx.reconcile.plan:
        return
    await _attach_thing_principal(ctx, journal, d.thing_name, arn)


async def _attach_thing_principal(ctx: RunContext, journal: Journal, thing: str,
                                  arn: str) -> None:
    await journaled(journal, THING_PRINCIPAL.name, {"thing": thing, "principal": arn},
                    api_call(ctx, "AttachThingPrincipal", thing, thingName=thing, principal=arn))


# What UpdateCertificate can set a stored certificate back to ACTIVE from (API reference,
# "UpdateCertificate": PENDING_TRANSFER and PENDING_ACTIVATION are set by AWS IoT only, and a
# REVOKED certificate stays revoked): anything else is provisioned afresh.
REACTIVATABLE = frozenset({"ACTIVE", "INACTIVE"})


async def reuse_stored(ctx: RunContext, d: Device) -> bool:
    """A device with a stored identity (a persistent fleet's, or an earlier kept run's: a
    run that is cleaned up removes the identities it made) whose certificate is in the
    registry and whose thing is there is reused (counted as `identities.reused`): an INACTIVE
    certificate is drift (`certificate ab12…: INACTIVE (want ACTIVE)`), set ACTIVE again; a
    certificate no longer attached to its thing is drift, attached again. Anything less (its
    certificate or thing gone, or revoked) is drift too, fixed by provisioning the device
    again (counted as `identities.reprovisioned`): expected states, not errors. Checked in
    bulk when a journal vouches for the attachment (engine/stored.py), else per device."""
    identity = dev.load_identity(ctx, d)
    if identity is None or identity.certificate_id is None:
        return False
    identity.check_files()  # one by one anyway: a damaged file is named before any call
    cert_id = identity.certificate_id
    state = await stored_state(ctx)
    status: str | None
    arn: str | None
    if state.known(d.thing_name, identity.certificate_arn) and cert_id in state.status:
        status, arn, attached = state.status[cert_id], identity.certificate_arn, True
    else:
        status, arn, attached = await _describe_stored(ctx, d, cert_id)
    if status not in REACTIVATABLE or arn is None:
        ctx.metrics.incr("identities.reprovisioned")
        ctx.reconcile.drifted(CERTIFICATE.name, d.thing_name, [
            f"stored certificate {short(cert_id)} is {(status or 'gone').lower()}"
            + (" (or its thing is)" if status is None else "") + ": provisioned again"])
        return False
    d.identity, d.certificate_id, d.certificate_arn = identity, cert_id, arn
    ctx.metrics.incr("identities.reused")
    ledger = ctx.reconcile
    if status == "ACTIVE":
        ledger.reuse(CERTIFICATE.name, d.thing_name)
    else:
        ledger.drifted(CERTIFICATE.name, short(cert_id), [f"{status} (want ACTIVE)"])
        if not ledger.plan:
            await api_call(ctx, "UpdateCertificate", d.thing_name, certificateId=cert_id,
                           newStatus="ACTIVE")
    if not attached:
        ledger.drifted(THING_PRINCIPAL.name, d.thing_name,
                       [f"certificate {short(arn)} is not attached"])
        if not ledger.plan:
            await _attach_thing_principal(ctx, ctx.journal_for(d.fleet), d.thing_name, arn)
    return True


def reuse_vouched(ctx: RunContext, devices: list[Device], state: StoredState,
                  policies: dict[str, set[str]],
                  policy_of: Callable[[Device], str] | None) -> list[Device]:
    """`provision`'s devices that need no call at all, reused in one pass: a stored identity
    that loads, whose certificate a journal vouches is attached to its thing and the listing
    says is ACTIVE, and (when the step attaches a policy, `policy_of(d)`) which that policy's
    targets (`policies`, listed before) hold: counted and written in the ledger at once, as
    `reuse_stored`, `provision` and `attach_policy` would one by one. The others are
    returned, for the per-device path (which also names a damaged identity file)."""
    rest: list[Device] = []
    reused: list[Device] = []
    attachments: list[str] = []
    for d in devices:
        try:
            identity = dev.load_identity(ctx, d)
        except UserError:
            rest.append(d)  # the per-device path reads it again and says what is wrong
            continue
        if (identity is None or identity.certificate_id is None
                or state.status.get(identity.certificate_id) != "ACTIVE"
                or not state.known(d.thing_name, identity.certificate_arn)):
            rest.append(d)
            continue
        policy = policy_of(d) if policy_of is not None else None
        if policy is not None and identity.certificate_arn not in policies.get(policy, ()):
            rest.append(d)
            continue
        d.identity, d.certificate_id = identity, identity.certificate_id
        d.certificate_arn = identity.certificate_arn
        reused.append(d)
        if policy is not None:
            attachments.append(f"{policy} → {d.thing_name}")
    if reused:
        ctx.metrics.incr("identities.reused", len(reused))
        names = [d.thing_name for d in reused]
        ctx.reconcile.reuse_many(CERTIFICATE.name, names)
        ctx.reconcile.reuse_many(THING.name, names)
        ctx.reconcile.reuse_many(POLICY_ATTACHMENT.name, attachments)
    return rest


async def reuse_registered(ctx: RunContext, d: Device) -> bool:
    """`reuse_stored` for a device a template provisions (register-thing, a bulk task, a
    claim): its thing, certificate and their attachment reused, the template not run again."""
    if not await reuse_stored(ctx, d):
        return False
    ctx.reconcile.reuse(THING.name, d.thing_name)
    return True


async def _describe_stored(ctx: RunContext, d: Device,
                           certificate_id: str) -> tuple[str | None, str | None, bool]:
    """The certificate's status (None if it or the device's thing is gone), its ARN, and
    whether it is attached to the thing, asked per device."""
    cert = await describe(ctx, "DescribeCertificate", d.thing_name,
                          certificateId=certificate_id)
    principals = await describe(ctx, "ListThingPrincipals", d.thing_name,
                                thingName=d.thing_name)
    if cert is None or principals is None:
        return None, None, False
    desc = cert["certificateDescription"]
    return desc["status"], desc["certificateArn"], desc["certificateArn"] in \
        principals.get("principals", [])


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


def sets_package_versions(template_body: str) -> bool:
    """Whether a provisioning template's thing sets `PackageVersions` (and so writes the
    thing's `$package` shadow); a body that is not JSON is left to the service to refuse."""
    try:
        resources = json.loads(template_body).get("Resources", {})
    except (ValueError, AttributeError):
        return False
    return isinstance(resources, dict) and any(
        isinstance(r, dict) and isinstance(r.get("Properties"), dict)
        and "PackageVersions" in r["Properties"] for r in resources.values())


async def _created_by_run(ctx: RunContext, policy: str) -> bool:
    """Whether `policy` was created since the run started (GetPolicy's `creationDate`, less
    a little for clocks apart); a policy already gone counts as the run's."""
    found = await describe(ctx, "GetPolicy", policy, policyName=policy)
    created = found.get("creationDate") if found else None
    return created is None or created.timestamp() >= ctx.started - CLOCK_SLACK_S


async def journal_registered(ctx: RunContext, d: Device, arns: dict[str, str],
                       certificate_journaled: bool = False,
                       found_things: frozenset[str] = frozenset(),
                       package_shadow: bool = False) -> None:
    """Journal what a template made for `d` (thing, certificate, policy, and the attachments
    between them, which AWS makes as the template's resources are created) so clean-up
    removes it; the device takes the certificate as its identity's. A thing of
    `found_things` was there before the template ran (AWS's template provisioning uses a thing
    that exists): reused, and left to whoever created it. `package_shadow`: the template sets
    `PackageVersions`, which writes the thing's `$package` reserved named shadow; on AWS a
    shadow outlives its thing, so it is journaled with the thing the template created."""
    journal = ctx.journal_for(d.fleet)
    names = resource_names(arns)
    certificate_arn = next((a for a in arns.values() if ":cert/" in a), None)
    ephemeral = journal is ctx.journal
    base = identity_base(ctx, d.fleet.name, d.thing_name)  # its files go with it
    for cert_id in [] if certificate_journaled else names.get("cert", []):
        journal.record(CERTIFICATE.name, id=cert_id, arn=certificate_arn, identity=base)
    if names.get("cert"):  # what a template makes is always new (counted as created)
        ctx.reconcile.create(CERTIFICATE.name, d.thing_name, ephemeral)
    for thing in names.get("thing", []):
        if thing in found_things:
            ctx.reconcile.reuse(THING.name, thing)
        else:
            ctx.reconcile.create(THING.name, thing, ephemeral)
            journal.record(THING.name, name=thing)
            if package_shadow:
                journal.record(SHADOW.name, thing=thing, shadow=PACKAGE_SHADOW)
        if certificate_arn:
            journal.record(THING_PRINCIPAL.name, thing=thing, principal=certificate_arn)
    for policy in names.get("policy", []):
        if certificate_arn:
            journal.record(POLICY_ATTACHMENT.name, policy=policy, target=certificate_arn)
        # A policy made from a PolicyDocument alone is named by the document's hash, so
        # another run or user with the same document shares it: the run journals (and clean-up
        # deletes) it only if the run created it, known by its creation date; once per run.
        if ("policy", policy) not in ctx.journaled:
            ctx.journaled.add(("policy", policy))
            if await _created_by_run(ctx, policy):
                journal.record(POLICY.name, name=policy)
    d.certificate_arn = certificate_arn
    d.certificate_id = names["cert"][0] if names.get("cert") else None
