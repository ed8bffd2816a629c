"""`register_ca`: the device CA of a just-in-time lab, registered as the labs do it.

The CA lives in a folder (`ca`, relative to the scenario; `certs/<name>` by convention), made on
first use (`fleetsim.pki.ca_store`) or put there by the user. Then, as the workshop:
`get-registration-code`, a verification certificate (CN = the code) signed by the CA, and
`register-ca-certificate --ca-certificate --verification-cert --set-as-active
--allow-auto-registration [--registration-config]` - with a JITP template (`template`, its
`${NAME}` placeholders replaced from `template_values` as the lab's `envsubst` does) it is JITP,
without one JITR. `export: NAME` makes the CA certificate's id `${NAME}` in later steps' files
(a JITR topic rule on `$aws/events/certificates/registered/${NAME}`). Journaled before the
call; clean-up deletes the things and certificates the CA admitted, then deactivates and
deletes the CA.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.control.cleanup import JournalKind, Phase
from fleetsim.control.clients import AwsClients
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call
from fleetsim.engine.placeholders import fill
from fleetsim.engine.provisioning import journaled
from fleetsim.engine.reconcile import document_item, short, value_item
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.pki import (
    CertificateAuthority,
    KeyType,
    certificate_id,
    certificate_pem,
    generate_key,
)
from fleetsim.pki.ca_store import CA_CERT, load_or_create_ca
from fleetsim.scenario.model import StepBase
from fleetsim.scenario.semantics import Loc, Problem, Scope


async def _delete_ca(clients: AwsClients, d: dict[str, Any]) -> None:
    """The things and certificates the CA admitted, then the CA (deactivated first). Found by
    `cleanup --prefix` (`things_prefix`): only the admitted things named with the prefix."""
    iot, ca_id = clients.iot, d["id"]
    marker: str | None = None
    while True:
        page = await iot.list_certificates_by_ca(caCertificateId=ca_id, pageSize=250,
                                                 **({"marker": marker} if marker else {}))
        await asyncio.gather(*(_delete_admitted(clients, c, d.get("things_prefix", ""))
                               for c in page["certificates"]))
        marker = page.get("nextMarker")
        if not marker:
            break
    await iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    await iot.delete_ca_certificate(certificateId=ca_id)


async def _delete_admitted(clients: AwsClients, cert: dict[str, Any],
                           things_prefix: str = "") -> None:
    iot, arn = clients.iot, cert["certificateArn"]
    things = (await iot.list_principal_things(principal=arn)).get("things", [])
    for thing in things:
        await iot.detach_thing_principal(thingName=thing, principal=arn)
    if cert["status"] == "ACTIVE":
        await iot.update_certificate(certificateId=cert["certificateId"], newStatus="INACTIVE")
    await iot.delete_certificate(certificateId=cert["certificateId"], forceDelete=True)
    for thing in (t for t in things if t.startswith(things_prefix)):
        try:
            await iot.delete_thing(thingName=thing)
        except ClientError as e:  # detached meanwhile, or still holding another principal
            if e.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise


CA_CERTIFICATE = JournalKind("ca_certificate", Phase.CERTIFICATES, _delete_ca)


class RegisterCaStep(StepBase):
    kind: Literal["register_ca"]
    ca: str  # the CA's folder (ca.pem, ca.key), relative to the scenario; made if empty
    key_type: KeyType = "rsa-2048"  # of a CA made here (the workshop's openssl genrsa 2048)
    common_name: str = "fleetsim JIT device CA"
    auto_registration: bool = True  # --allow-auto-registration
    template: str | None = None  # a JITP template body file: --registration-config
    template_values: dict[str, str] = {}  # ${NAME} in the template -> value
    role_arn: str = "arn:aws:iam::123456789012:role/JITPRole"  # the registration config's
    export: str | None = None  # ${NAME} that later steps' files use for the CA certificate id

    file_fields: ClassVar[tuple[str, ...]] = ("template",)
    dir_fields: ClassVar[tuple[str, ...]] = ("ca",)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        if self.template_values and self.template is None:
            return [((*at, "template_values"), "template_values need a 'template' to fill")]
        return []


def template_body(path: str, values: dict[str, str]) -> str:
    """The template file with its ${NAME} placeholders filled; one missing is an error."""
    return fill(Path(path).read_text(), values, path, "the register_ca step's template_values")


async def run(ctx: RunContext, step: RegisterCaStep) -> None:
    """The CA is described first (DescribeCACertificate, by its id): absent, registered;
    there as declared, reused; else drift item by item (`ca_certificate ID: INACTIVE (want
    ACTIVE)`, its auto-registration, its registration template), fixed with
    UpdateCACertificate."""
    folder = Path(step.ca)
    if ctx.reconcile.plan and not (folder / CA_CERT).exists():
        ctx.reconcile.create(CA_CERTIFICATE.name, f"a new CA in {folder}")
        return  # planning makes no CA on disk either
    ca, made = load_or_create_ca(folder, step.common_name, step.key_type)
    if made:
        ctx.metrics.incr("ca.made")
    config: dict[str, Any] | None = None
    if step.template is not None:
        body = template_body(step.template, {**ctx.values, **step.template_values})
        try:
            json.loads(body)
        except ValueError as e:
            raise UserError(f"{step.template} is not valid JSON once filled: {e}") from e
        config = {"templateBody": body, "roleArn": step.role_arn}
    ca_id = certificate_id(ca.cert.public_bytes(Encoding.DER))
    if step.export:
        ctx.values[step.export] = ca_id
    have = await describe(ctx, "DescribeCaCertificate", ca_id, certificateId=ca_id)
    if have is None:
        ctx.reconcile.create(CA_CERTIFICATE.name, short(ca_id))
        if not ctx.reconcile.plan:
            await _register(ctx, ca, ca_id, step.auto_registration, config)
        return
    await _reconcile(ctx, ca_id, have, step.auto_registration, config)


async def _register(ctx: RunContext, ca: CertificateAuthority, ca_id: str, auto: bool,
                    config: dict[str, Any] | None) -> None:
    code = (await api_call(ctx, "GetRegistrationCode"))["registrationCode"]
    verification = ca.issue_device(generate_key("ec-p256").public_key(), code)
    params: dict[str, Any] = {
        "caCertificate": certificate_pem(ca.cert).decode(),
        "verificationCertificate": certificate_pem(verification).decode(),
        "setAsActive": True, "allowAutoRegistration": auto}
    if config is not None:
        params["registrationConfig"] = config
    await journaled(ctx.journal, CA_CERTIFICATE.name, {"id": ca_id},
                    api_call(ctx, "RegisterCaCertificate", ca_id, **params))


async def _reconcile(ctx: RunContext, ca_id: str, have: dict[str, Any], auto: bool,
                     config: dict[str, Any] | None) -> None:
    desc = have["certificateDescription"]
    want_auto = "ENABLE" if auto else "DISABLE"
    items = value_item("status", desc.get("status"), "ACTIVE")
    items += value_item("auto-registration", desc.get("autoRegistrationStatus"), want_auto)
    held = have.get("registrationConfig") or {}
    if config is not None:
        items += document_item("registration template", held.get("templateBody") or "{}",
                               config["templateBody"])
        items += value_item("registration role", held.get("roleArn"), config["roleArn"])
    if not items:
        ctx.reconcile.reuse(CA_CERTIFICATE.name, short(ca_id))
        return
    ctx.reconcile.drifted(CA_CERTIFICATE.name, short(ca_id), items)
    if ctx.reconcile.plan:
        return
    update: dict[str, Any] = {"certificateId": ca_id, "newStatus": "ACTIVE",
                              "newAutoRegistrationStatus": want_auto}
    if config is not None:
        update["registrationConfig"] = config
    await api_call(ctx, "UpdateCaCertificate", ca_id, **update)


KIND = StepKind(RegisterCaStep, run, journals=(CA_CERTIFICATE,), plans=True)
