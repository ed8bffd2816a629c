"""Device certificates: issued by local core's CA, from CSRs, or registered."""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.errors import (
    ApiError,
    already_exists,
    certificate_state,
    delete_conflict,
    found,
    invalid,
)
from fleetsim.localcore.api.operations import iot
from fleetsim.localcore.store import CertificateRecord, certificate_record
from fleetsim.pki import (
    certificate_id,
    generate_key,
    load_certificate,
    private_key_pem,
    public_key_pem,
)

INACTIVE_STATUSES = {"INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE",
                     "PENDING_ACTIVATION"}


def _initial_status(p: dict[str, Any]) -> str:
    return "ACTIVE" if p.get("setAsActive") else "INACTIVE"


def require_certificate(ctx: ApiContext, cert_id: str) -> CertificateRecord:
    return found(ctx.store.get_certificate(cert_id))


def parse_pem(pem: str, what: str = "certificate") -> x509.Certificate:
    try:
        return load_certificate(pem.encode())
    except ValueError as e:
        raise ApiError("CertificateValidationException",
                       f"The {what} is not a valid PEM-encoded X.509 certificate.") from e


def _store_new(ctx: ApiContext, rec: CertificateRecord) -> CertificateRecord:
    existing = ctx.store.get_certificate(rec.id)
    if existing is not None:
        raise already_exists("The certificate is already provisioned or registered",
                             rec.id, ctx.arn("cert", rec.id))
    return ctx.store.insert_certificate(rec)


@iot("CreateKeysAndCertificate")
async def create_keys_and_certificate(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    key_type = ctx.core.config.keys_and_certificate_key_type
    if key_type == "ec-p256":
        key = generate_key(key_type)  # 25 µs: cheaper inline than a thread hop
    else:
        # RSA key generation takes tens of ms and releases the GIL: keep it off the loop.
        key = await asyncio.get_running_loop().run_in_executor(None, generate_key, key_type)
    cert = ctx.core.ca.authority.issue_device(key.public_key())
    rec = _store_new(ctx, certificate_record(cert, _initial_status(p)))
    return {"certificateArn": ctx.arn("cert", rec.id), "certificateId": rec.id,
            "certificatePem": rec.pem,
            "keyPair": {"PublicKey": public_key_pem(key.public_key()).decode(),
                        "PrivateKey": private_key_pem(key).decode()}}


@iot("CreateCertificateFromCsr")
def create_certificate_from_csr(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    try:
        cert = ctx.core.ca.authority.issue_for_csr(p["certificateSigningRequest"].encode())
    except ValueError as e:
        raise invalid(f"The certificate signing request is not valid: {e}") from e
    rec = _store_new(ctx, certificate_record(cert, _initial_status(p)))
    return {"certificateArn": ctx.arn("cert", rec.id), "certificateId": rec.id,
            "certificatePem": rec.pem}


@iot("RegisterCertificate")
def register_certificate(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    cert = parse_pem(p["certificatePem"])
    ca = ctx.store.issuing_ca(cert)
    if p.get("caCertificatePem"):
        ca_cert = parse_pem(p["caCertificatePem"], "CA certificate")
        given = certificate_id(ca_cert.public_bytes(Encoding.DER))
        if ctx.store.get_ca_certificate(given) is None:
            raise ApiError("CertificateValidationException",
                           "The CA certificate is not registered.")
        if ca is None or ca.id != given:
            ca = None
    if ca is None:
        raise ApiError("CertificateValidationException",
                       "The certificate is not signed by a registered CA certificate.")
    if ca.status != "ACTIVE":
        raise certificate_state(f"The CA certificate {ca.id} is not ACTIVE.")
    status = p.get("status") or ("ACTIVE" if p.get("setAsActive") else "INACTIVE")
    rec = _store_new(ctx, certificate_record(cert, status, ca_id=ca.id))
    return {"certificateArn": ctx.arn("cert", rec.id), "certificateId": rec.id}


@iot("RegisterCertificateWithoutCA")
def register_certificate_without_ca(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    cert = parse_pem(p["certificatePem"])
    rec = _store_new(ctx, certificate_record(cert, p.get("status") or "INACTIVE", mode="SNI_ONLY"))
    ctx.core.add_trust_anchor(rec.pem)
    return {"certificateArn": ctx.arn("cert", rec.id), "certificateId": rec.id}


@iot("DescribeCertificate")
def describe_certificate(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    cert = require_certificate(ctx, p["certificateId"])
    desc: dict[str, Any] = {
        "certificateArn": ctx.arn("cert", cert.id), "certificateId": cert.id,
        "status": cert.status, "certificatePem": cert.pem, "ownedBy": ctx.account_id,
        "creationDate": cert.created, "lastModifiedDate": cert.last_modified,
        "customerVersion": cert.customer_version, "generationId": cert.generation_id,
        "transferData": {},
        "validity": {"notBefore": cert.not_before, "notAfter": cert.not_after},
        "certificateMode": cert.mode}
    if cert.ca_id:
        desc["caCertificateId"] = cert.ca_id
    return {"certificateDescription": desc}


@iot("UpdateCertificate")
def update_certificate(ctx: ApiContext, p: dict[str, Any]) -> None:
    cert = require_certificate(ctx, p["certificateId"])
    new_status = p["newStatus"]
    if new_status in ("PENDING_TRANSFER", "PENDING_ACTIVATION"):
        raise invalid(f"The certificate status cannot be set to {new_status}.")
    if cert.status == "REVOKED" and new_status == "ACTIVE":
        raise certificate_state(f"A revoked certificate cannot be activated. Id: {cert.id}")
    was_active = cert.status == "ACTIVE"
    ctx.store.set_certificate_status(cert, new_status)
    if was_active and new_status in INACTIVE_STATUSES:
        ctx.core.broker.disconnect_certificate(cert.id)


@iot("DeleteCertificate")
def delete_certificate(ctx: ApiContext, p: dict[str, Any]) -> None:
    cert = require_certificate(ctx, p["certificateId"])
    arn = ctx.arn("cert", cert.id)
    if cert.status == "ACTIVE":
        raise certificate_state("Certificate must be deactivated (not ACTIVE) before deletion. "
                                f"Id: {cert.id}")
    if ctx.store.things_of_principal(arn):
        raise delete_conflict(f"Things must be detached before deletion (arn: {arn})")
    if ctx.store.policies_of_target(arn) and not p.get("forceDelete"):
        raise delete_conflict(f"Certificate policies must be detached before deletion "
                              f"(arn: {arn})")
    ctx.store.delete_certificate(cert.id)
    ctx.core.broker.disconnect_certificate(cert.id)


def _summaries(ctx: ApiContext, certs: list[CertificateRecord]) -> list[dict[str, Any]]:
    return [{"certificateArn": ctx.arn("cert", c.id), "certificateId": c.id,
             "status": c.status, "certificateMode": c.mode, "creationDate": c.created}
            for c in certs]


def _list(ctx: ApiContext, p: dict[str, Any], ca_id: str | None) -> dict[str, Any]:
    ascending = bool(p.get("ascendingOrder"))
    start = paging.decode_int(p.get("marker"), 0 if ascending else 2**62)
    certs, last = ctx.store.list_certificates(start, paging.page_size(p, "pageSize", 25),
                                              ascending, ca_id)
    return paging.listing("certificates", _summaries(ctx, certs), "nextMarker",
                          paging.next_token(last))


@iot("ListCertificates")
def list_certificates(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    return _list(ctx, p, None)


@iot("ListCertificatesByCA")
def list_certificates_by_ca(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    return _list(ctx, p, p["caCertificateId"])
