"""CA certificates (bring your own CA, JITP/JITR) and the registration code."""

from __future__ import annotations

import time
import uuid
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.certificates import parse_pem
from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.errors import ApiError, already_exists, certificate_state, found
from fleetsim.localcore.api.operations import iot
from fleetsim.localcore.store import CaCertificateRecord
from fleetsim.pki import certificate_id, certificate_pem


def require_ca(ctx: ApiContext, ca_id: str) -> CaCertificateRecord:
    return found(ctx.store.get_ca_certificate(ca_id))


def _check_verification(ctx: ApiContext, ca: x509.Certificate, verification_pem: str) -> None:
    """Proof of possession: the verification certificate's CN is the registration code and it
    is signed by the CA's private key."""
    verification = parse_pem(verification_pem, "verification certificate")
    cns = verification.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or cns[0].value != ctx.store.registration_code:
        raise ApiError("RegistrationCodeValidationException",
                       "The common name of the verification certificate does not match the "
                       "registration code.")
    try:
        verification.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise ApiError("CertificateValidationException",
                       "The verification certificate is not signed by the CA certificate."
                       ) from e


@iot("GetRegistrationCode")
def get_registration_code(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    return {"registrationCode": ctx.store.registration_code}


@iot("RegisterCACertificate")
def register_ca_certificate(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    ca = parse_pem(p["caCertificate"], "CA certificate")
    try:
        is_ca = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ApiError("CertificateValidationException",
                       "The certificate is not a CA certificate (basicConstraints CA:TRUE).")
    mode = p.get("certificateMode") or "DEFAULT"
    if mode == "DEFAULT":
        if not p.get("verificationCertificate"):
            raise ApiError("InvalidRequestException",
                           "A verification certificate is required to register a CA "
                           "certificate in DEFAULT mode.")
        _check_verification(ctx, ca, p["verificationCertificate"])
    ca_id = certificate_id(ca.public_bytes(Encoding.DER))
    arn = ctx.arn("cacert", ca_id)
    if ctx.store.get_ca_certificate(ca_id) is not None:
        raise already_exists("The CA certificate is already registered", ca_id, arn)
    now = time.time()
    rec = ctx.store.insert_ca_certificate(CaCertificateRecord(
        ca_id, certificate_pem(ca).decode(), "ACTIVE" if p.get("setAsActive") else "INACTIVE",
        "ENABLE" if p.get("allowAutoRegistration") else "DISABLE",
        p.get("registrationConfig") or None, mode, now, now, 1, str(uuid.uuid4()),
        ca.not_valid_before_utc.timestamp(), ca.not_valid_after_utc.timestamp()))
    ctx.core.add_trust_anchor(rec.pem)
    return {"certificateArn": arn, "certificateId": ca_id}


@iot("DescribeCACertificate")
def describe_ca_certificate(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    ca = require_ca(ctx, p["certificateId"])
    out: dict[str, Any] = {"certificateDescription": {
        "certificateArn": ctx.arn("cacert", ca.id), "certificateId": ca.id,
        "status": ca.status, "certificatePem": ca.pem, "ownedBy": ctx.account_id,
        "creationDate": ca.created, "autoRegistrationStatus": ca.auto_registration,
        "lastModifiedDate": ca.last_modified, "customerVersion": ca.customer_version,
        "generationId": ca.generation_id,
        "validity": {"notBefore": ca.not_before, "notAfter": ca.not_after},
        "certificateMode": ca.mode}}
    if ca.registration_config:
        out["registrationConfig"] = ca.registration_config
    return out


@iot("UpdateCACertificate")
def update_ca_certificate(ctx: ApiContext, p: dict[str, Any]) -> None:
    ca = require_ca(ctx, p["certificateId"])
    if p.get("newStatus"):
        ca.status = p["newStatus"]
    if p.get("newAutoRegistrationStatus"):
        ca.auto_registration = p["newAutoRegistrationStatus"]
    if p.get("removeAutoRegistration"):
        ca.registration_config = None
    elif p.get("registrationConfig"):
        ca.registration_config = p["registrationConfig"]
    ctx.store.update_ca_certificate(ca)


@iot("DeleteCACertificate")
def delete_ca_certificate(ctx: ApiContext, p: dict[str, Any]) -> None:
    ca = require_ca(ctx, p["certificateId"])
    if ca.status == "ACTIVE":
        raise certificate_state("CA certificate must be deactivated (not ACTIVE) before "
                                f"deletion. Id: {ca.id}")
    ctx.store.delete_ca_certificate(ca.id)


@iot("ListCACertificates")
def list_ca_certificates(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    ascending = bool(p.get("ascendingOrder"))
    start = paging.decode_int(p.get("marker"), 0 if ascending else 2**62)
    page, last = ctx.store.list_ca_certificates(start, paging.page_size(p, "pageSize", 25),
                                                ascending)
    if p.get("templateName"):
        page = [c for c in page
                if (c.registration_config or {}).get("templateName") == p["templateName"]]
    return paging.listing("certificates", [
        {"certificateArn": ctx.arn("cacert", c.id), "certificateId": c.id, "status": c.status,
         "creationDate": c.created} for c in page], "nextMarker", paging.next_token(last))
