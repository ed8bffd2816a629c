"""HTTP handlers of device and CA certificates."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.certificates.records import CertificateRecord
from fleetsim.localcore.features.certificates.service import CertificatesService
from fleetsim.localcore.scope import Scope
from fleetsim.pki import private_key_pem, public_key_pem

operations = Operations()
iot = operations.iot
C = Call[CertificatesService]


def _created(scope: Scope, rec: CertificateRecord) -> dict[str, Any]:
    return {"certificateArn": scope.arn("cert", rec.id), "certificateId": rec.id}


@iot("CreateKeysAndCertificate")
async def create_keys_and_certificate(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rec, key = await call.service.create_keys_and_certificate(call.scope,
                                                              bool(p.get("setAsActive")))
    return {**_created(call.scope, rec), "certificatePem": rec.pem,
            "keyPair": {"PublicKey": public_key_pem(key.public_key()).decode(),
                        "PrivateKey": private_key_pem(key).decode()}}


@iot("CreateCertificateFromCsr")
def create_certificate_from_csr(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rec = call.service.create_certificate_from_csr(call.scope, p["certificateSigningRequest"],
                                                   bool(p.get("setAsActive")))
    return {**_created(call.scope, rec), "certificatePem": rec.pem}


@iot("RegisterCertificate")
def register_certificate(call: C, p: dict[str, Any]) -> dict[str, Any]:
    status = p.get("status") or ("ACTIVE" if p.get("setAsActive") else "INACTIVE")
    rec = call.service.register_certificate(call.scope, p["certificatePem"],
                                            p.get("caCertificatePem"), status)
    return _created(call.scope, rec)


@iot("RegisterCertificateWithoutCA")
def register_certificate_without_ca(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rec = call.service.register_certificate_without_ca(call.scope, p["certificatePem"],
                                                       p.get("status") or "INACTIVE")
    return _created(call.scope, rec)


@iot("DescribeCertificate")
def describe_certificate(call: C, p: dict[str, Any]) -> dict[str, Any]:
    cert = call.service.require_certificate(call.scope, p["certificateId"])
    desc: dict[str, Any] = {
        **_created(call.scope, cert), "status": cert.status, "certificatePem": cert.pem,
        "ownedBy": call.scope.account_id, "creationDate": cert.created,
        "lastModifiedDate": cert.last_modified, "customerVersion": cert.customer_version,
        "generationId": cert.generation_id, "transferData": {},
        "validity": {"notBefore": cert.not_before, "notAfter": cert.not_after},
        "certificateMode": cert.mode}
    if cert.ca_id:
        desc["caCertificateId"] = cert.ca_id
    return {"certificateDescription": desc}


@iot("UpdateCertificate")
def update_certificate(call: C, p: dict[str, Any]) -> None:
    call.service.update_certificate(call.scope, p["certificateId"], p["newStatus"])


@iot("DeleteCertificate")
def delete_certificate(call: C, p: dict[str, Any]) -> None:
    call.service.delete_certificate(call.scope, p["certificateId"], bool(p.get("forceDelete")))


def _list(call: C, p: dict[str, Any], ca_id: str | None) -> dict[str, Any]:
    ascending = bool(p.get("ascendingOrder"))
    start = paging.decode_int(p.get("marker"), 0 if ascending else 2**62)
    certs, last = call.service.list_certificates(
        call.scope, start, paging.page_size(p, "pageSize", 25), ascending, ca_id)
    return paging.listing("certificates", [
        {**_created(call.scope, c), "status": c.status, "certificateMode": c.mode,
         "creationDate": c.created} for c in certs], "nextMarker", paging.next_token(last))


@iot("ListCertificates")
def list_certificates(call: C, p: dict[str, Any]) -> dict[str, Any]:
    return _list(call, p, None)


@iot("ListCertificatesByCA")
def list_certificates_by_ca(call: C, p: dict[str, Any]) -> dict[str, Any]:
    return _list(call, p, p["caCertificateId"])


# --- CA certificates ------------------------------------------------------------------------

@iot("GetRegistrationCode")
def get_registration_code(call: C, p: dict[str, Any]) -> dict[str, Any]:
    return {"registrationCode": call.service.registration_code(call.scope)}


@iot("RegisterCACertificate")
def register_ca_certificate(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rec = call.service.register_ca_certificate(
        call.scope, p["caCertificate"], p.get("verificationCertificate"),
        p.get("certificateMode") or "DEFAULT", bool(p.get("setAsActive")),
        bool(p.get("allowAutoRegistration")), p.get("registrationConfig"))
    return {"certificateArn": call.scope.arn("cacert", rec.id), "certificateId": rec.id}


@iot("DescribeCACertificate")
def describe_ca_certificate(call: C, p: dict[str, Any]) -> dict[str, Any]:
    ca = call.service.require_ca(call.scope, p["certificateId"])
    out: dict[str, Any] = {"certificateDescription": {
        "certificateArn": call.scope.arn("cacert", ca.id), "certificateId": ca.id,
        "status": ca.status, "certificatePem": ca.pem, "ownedBy": call.scope.account_id,
        "creationDate": ca.created, "autoRegistrationStatus": ca.auto_registration,
        "lastModifiedDate": ca.last_modified, "customerVersion": ca.customer_version,
        "generationId": ca.generation_id,
        "validity": {"notBefore": ca.not_before, "notAfter": ca.not_after},
        "certificateMode": ca.mode}}
    if ca.registration_config:
        out["registrationConfig"] = ca.registration_config
    return out


@iot("UpdateCACertificate")
def update_ca_certificate(call: C, p: dict[str, Any]) -> None:
    call.service.update_ca_certificate(
        call.scope, p["certificateId"], status=p.get("newStatus"),
        auto_registration=p.get("newAutoRegistrationStatus"),
        registration_config=p.get("registrationConfig"),
        remove_auto_registration=bool(p.get("removeAutoRegistration")))


@iot("DeleteCACertificate")
def delete_ca_certificate(call: C, p: dict[str, Any]) -> None:
    call.service.delete_ca_certificate(call.scope, p["certificateId"])


@iot("ListCACertificates")
def list_ca_certificates(call: C, p: dict[str, Any]) -> dict[str, Any]:
    ascending = bool(p.get("ascendingOrder"))
    start = paging.decode_int(p.get("marker"), 0 if ascending else 2**62)
    page, last = call.service.list_ca_certificates(call.scope, start,
                                                   paging.page_size(p, "pageSize", 25), ascending)
    if p.get("templateName"):
        page = [c for c in page
                if (c.registration_config or {}).get("templateName") == p["templateName"]]
    return paging.listing("certificates", [
        {"certificateArn": call.scope.arn("cacert", c.id), "certificateId": c.id,
         "status": c.status, "creationDate": c.created} for c in page], "nextMarker",
        paging.next_token(last))
