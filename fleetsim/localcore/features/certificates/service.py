"""Certificates: issued by local core's CA (from its own key or a CSR), registered (with or
without a registered CA, or just in time), their status, CA certificates and the registration
code that proves a CA's ownership. The only writer of this feature's tables."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fleetsim.localcore.bus import Bus
from fleetsim.localcore.ca import LocalCA
from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import (
    AwsError,
    already_exists,
    certificate_state,
    delete_conflict,
    found,
    invalid,
)
from fleetsim.localcore.features.certificates import announcements as a
from fleetsim.localcore.features.certificates.records import (
    CaCertificateRecord,
    CertificateRecord,
    certificate_record,
)
from fleetsim.localcore.features.certificates.store import CertificatesStore
from fleetsim.localcore.scope import Scope
from fleetsim.pki import certificate_id, certificate_pem, generate_key, load_certificate
from fleetsim.pki.keys import KeyType, PrivateKey

if TYPE_CHECKING:
    from fleetsim.localcore.features.context import Services

INACTIVE_STATUSES = {"INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE",
                     "PENDING_ACTIVATION"}


def parse_pem(pem: str, what: str = "certificate") -> x509.Certificate:
    try:
        return load_certificate(pem.encode())
    except ValueError as e:
        raise AwsError("CertificateValidationException",
                       f"The {what} is not a valid PEM-encoded X.509 certificate.") from e


def _already_registered(scope: Scope, cert_id: str) -> AwsError:
    return already_exists("The certificate is already provisioned or registered", cert_id,
                          scope.arn("cert", cert_id))


def check_validity(cert: x509.Certificate) -> None:
    """RegisterCertificate refuses a certificate outside its validity period
    (CertificateValidationException: "The certificate is invalid", AWS IoT API reference)."""
    now = time.time()
    if cert.not_valid_after_utc.timestamp() < now:
        raise AwsError("CertificateValidationException",
                       "The certificate is invalid: it expired on "
                       f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}.")
    if cert.not_valid_before_utc.timestamp() > now:
        raise AwsError("CertificateValidationException",
                       "The certificate is invalid: it is not valid before "
                       f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}.")


# "X.509 client certificates" (AWS IoT developer guide): the signing algorithms AWS IoT
# supports are SHA256/384/512 with RSA, DSA with SHA256 and ECDSA with SHA256/384/512.
_CSR_HASHES = {"sha256", "sha384", "sha512"}


def check_csr_algorithm(csr_pem: str) -> None:
    """A CSR signed with a hash AWS IoT does not support (SHA-1, MD5) is refused for its
    algorithm, before its signature is checked."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        algorithm = csr.signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm):
        return  # issue_for_csr says what is wrong with it
    name = algorithm.name if algorithm is not None else "none"
    if name not in _CSR_HASHES:
        raise invalid(f"The certificate signing request is signed with {name.upper()}, a "
                      "signature algorithm AWS IoT does not support: sign it with SHA-256, "
                      "SHA-384 or SHA-512 (RSA, DSA or ECDSA).")


class CertificatesService:
    def __init__(self, db: Database, bus: Bus, services: Services, ca: LocalCA,
                 key_type: KeyType, disconnect: Callable[[str], None],
                 trust_anchor: Callable[[str], None], broker_region: str):
        self._db = db
        self._store = CertificatesStore(db)
        self._bus = bus
        self._services = services
        self._ca = ca
        self._key_type = key_type
        self._disconnect = disconnect
        self._trust_anchor = trust_anchor
        self._broker_region = broker_region

    # --- device certificates -----------------------------------------------------------------

    def get_certificate(self, scope: Scope, cert_id: str) -> CertificateRecord | None:
        return self._store.get_certificate(scope.region, cert_id)

    def require_certificate(self, scope: Scope, cert_id: str) -> CertificateRecord:
        return found(self._store.get_certificate(scope.region, cert_id))

    def _add(self, scope: Scope, rec: CertificateRecord, just_in_time: bool = False
             ) -> CertificateRecord:
        if self._store.get_certificate(scope.region, rec.id) is not None:
            raise _already_registered(scope, rec.id)
        rec = self._store.insert_certificate(scope.region, rec)
        if rec.mode == "SNI_ONLY":
            self._trust_anchor(rec.pem)
        self._bus.publish(a.CertificateRegistered(scope, rec, just_in_time))
        return rec

    async def create_keys_and_certificate(self, scope: Scope, active: bool, *,
                                          status: str | None = None
                                          ) -> tuple[CertificateRecord, PrivateKey]:
        """`status` (e.g. PENDING_ACTIVATION for fleet provisioning) overrides `active`."""
        if self._key_type == "ec-p256":
            key = generate_key(self._key_type)  # 25 µs: cheaper inline than a thread hop
        else:
            # RSA key generation takes tens of ms and releases the GIL: keep it off the loop.
            key = await asyncio.get_running_loop().run_in_executor(None, generate_key,
                                                                   self._key_type)
        cert = self._ca.authority.issue_device(key.public_key())
        status = status or ("ACTIVE" if active else "INACTIVE")
        return self._add(scope, certificate_record(cert, status)), key

    def issue_device_certificate(self, scope: Scope, public_key: Any, common_name: str,
                                 active: bool = True) -> CertificateRecord:
        """A certificate for `public_key` signed by local core's CA (fleet set-ups)."""
        cert = self._ca.authority.issue_device(public_key, common_name)
        return self._add(scope, certificate_record(cert, "ACTIVE" if active else "INACTIVE"))

    def create_certificate_from_csr(self, scope: Scope, csr_pem: str, active: bool, *,
                                    status: str | None = None) -> CertificateRecord:
        """`status` (e.g. PENDING_ACTIVATION for fleet provisioning) overrides `active`."""
        check_csr_algorithm(csr_pem)
        try:
            cert = self._ca.authority.issue_for_csr(csr_pem.encode())
        except ValueError as e:
            raise invalid(f"The certificate signing request is not valid: {e}") from e
        status = status or ("ACTIVE" if active else "INACTIVE")
        return self._add(scope, certificate_record(cert, status))

    def register_certificate(self, scope: Scope, pem: str, ca_pem: str | None,
                             status: str) -> CertificateRecord:
        cert = parse_pem(pem)
        self._require_new(scope, cert)
        check_validity(cert)
        ca = self.issuing_ca(scope, cert)
        if ca_pem:
            ca_cert = parse_pem(ca_pem, "CA certificate")
            given = certificate_id(ca_cert.public_bytes(Encoding.DER))
            if self._store.get_ca_certificate(scope.region, given) is None:
                raise AwsError("CertificateValidationException",
                               "The CA certificate is not registered.")
            if ca is None or ca.id != given:
                ca = None
        if ca is None:
            raise AwsError("CertificateValidationException",
                           "The certificate is not signed by a registered CA certificate.")
        if ca.status != "ACTIVE":
            raise certificate_state(f"The CA certificate {ca.id} is not ACTIVE.")
        return self._add(scope, certificate_record(cert, status, ca_id=ca.id))

    def register_certificate_without_ca(self, scope: Scope, pem: str, status: str
                                        ) -> CertificateRecord:
        cert = parse_pem(pem)
        self._require_new(scope, cert)
        check_validity(cert)
        return self._add(scope, certificate_record(cert, status, mode="SNI_ONLY"))

    def _require_new(self, scope: Scope, cert: x509.Certificate) -> None:
        """Registering a certificate already registered answers ResourceAlreadyExists before
        any other check, as AWS does."""
        cert_id = certificate_id(cert.public_bytes(Encoding.DER))
        if self._store.get_certificate(scope.region, cert_id) is not None:
            raise _already_registered(scope, cert_id)

    def update_certificate(self, scope: Scope, cert_id: str, new_status: str) -> None:
        cert = self.require_certificate(scope, cert_id)
        if new_status in ("PENDING_TRANSFER", "PENDING_ACTIVATION"):
            raise invalid(f"The certificate status cannot be set to {new_status}.")
        if cert.status == "REVOKED" and new_status == "ACTIVE":
            raise certificate_state(f"A revoked certificate cannot be activated. Id: {cert.id}")
        previous = cert.status
        cert = self._store.set_certificate_status(scope.region, cert, new_status)
        if previous == "ACTIVE" and new_status in INACTIVE_STATUSES:
            self._disconnect_in(scope, cert.id)
        self._bus.publish(a.CertificateStateChanged(scope, cert, previous))

    def delete_certificate(self, scope: Scope, cert_id: str, force: bool) -> None:
        cert = self.require_certificate(scope, cert_id)
        arn = scope.arn("cert", cert.id)
        if cert.status == "ACTIVE":
            raise certificate_state("Certificate must be deactivated (not ACTIVE) before "
                                    f"deletion. Id: {cert.id}")
        if self._services.registry.things_of_principal(scope, arn):
            raise delete_conflict(f"Things must be detached before deletion (arn: {arn})")
        if self._services.policies.policies_of_target(scope, arn) and not force:
            raise delete_conflict(f"Certificate policies must be detached before deletion "
                                  f"(arn: {arn})")
        with self._db.transaction():
            self._store.delete_certificate(scope.region, cert.id)
            self._services.policies.detach_all(scope, arn)
        self._disconnect_in(scope, cert.id)
        self._bus.publish(a.CertificateDeleted(scope, cert))

    def _disconnect_in(self, scope: Scope, cert_id: str) -> None:
        if scope.region == self._broker_region:
            self._disconnect(cert_id)

    def list_certificates(self, scope: Scope, after: int, limit: int, ascending: bool,
                          ca_id: str | None = None
                          ) -> tuple[list[CertificateRecord], int | None]:
        return self._store.list_certificates(scope.region, after, limit, ascending, ca_id)

    def trust_anchor_pems(self) -> list[str]:
        """Registered CA certificates and certificates registered without a CA: the broker's
        TLS context must accept chains ending in them."""
        return self._store.ca_certificate_pems() + self._store.ca_less_certificate_pems()

    # --- CA certificates ---------------------------------------------------------------------

    def registration_code(self, scope: Scope) -> str:
        return self._store.registration_code(scope.region, secrets.token_hex(32))

    def get_ca(self, scope: Scope, ca_id: str) -> CaCertificateRecord | None:
        return self._store.get_ca_certificate(scope.region, ca_id)

    def require_ca(self, scope: Scope, ca_id: str) -> CaCertificateRecord:
        return found(self.get_ca(scope, ca_id))

    def _check_verification(self, scope: Scope, ca: x509.Certificate,
                            verification_pem: str) -> None:
        """Proof of possession: the verification certificate's CN is the registration code
        and it is signed by the CA's private key."""
        verification = parse_pem(verification_pem, "verification certificate")
        cns = verification.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cns or cns[0].value != self.registration_code(scope):
            raise AwsError("RegistrationCodeValidationException",
                           "The common name of the verification certificate does not match the "
                           "registration code.")
        try:
            verification.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise AwsError("CertificateValidationException",
                           "The verification certificate is not signed by the CA certificate."
                           ) from e

    def register_ca_certificate(self, scope: Scope, pem: str, verification_pem: str | None,
                                mode: str, active: bool, auto_registration: bool,
                                registration_config: dict[str, Any] | None
                                ) -> CaCertificateRecord:
        ca = parse_pem(pem, "CA certificate")
        try:
            is_ca = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise AwsError("CertificateValidationException",
                           "The certificate is not a CA certificate (basicConstraints CA:TRUE).")
        if mode == "DEFAULT":
            if not verification_pem:
                raise AwsError("InvalidRequestException",
                               "A verification certificate is required to register a CA "
                               "certificate in DEFAULT mode.")
            self._check_verification(scope, ca, verification_pem)
        ca_id = certificate_id(ca.public_bytes(Encoding.DER))
        if self._store.get_ca_certificate(scope.region, ca_id) is not None:
            raise already_exists("The CA certificate is already registered", ca_id,
                                 scope.arn("cacert", ca_id))
        now = time.time()
        rec = self._store.insert_ca_certificate(scope.region, CaCertificateRecord(
            ca_id, certificate_pem(ca).decode(), "ACTIVE" if active else "INACTIVE",
            "ENABLE" if auto_registration else "DISABLE", registration_config or None, mode,
            now, now, 1, str(uuid.uuid4()), ca.not_valid_before_utc.timestamp(),
            ca.not_valid_after_utc.timestamp()))
        self._trust_anchor(rec.pem)
        self._bus.publish(a.CaCertificateRegistered(scope, rec))
        return rec

    def add_ca_certificate(self, scope: Scope, rec: CaCertificateRecord) -> CaCertificateRecord:
        """Store a CA certificate record as given (no proof of possession)."""
        rec = self._store.insert_ca_certificate(scope.region, rec)
        self._trust_anchor(rec.pem)
        self._bus.publish(a.CaCertificateRegistered(scope, rec))
        return rec

    def update_ca_certificate(self, scope: Scope, ca_id: str, *, status: str | None = None,
                              auto_registration: str | None = None,
                              registration_config: dict[str, Any] | None = None,
                              remove_auto_registration: bool = False) -> CaCertificateRecord:
        ca = self.require_ca(scope, ca_id)
        if status:
            ca.status = status
        if auto_registration:
            ca.auto_registration = auto_registration
        if remove_auto_registration:
            ca.registration_config = None
        elif registration_config:
            ca.registration_config = registration_config
        ca = self._store.update_ca_certificate(scope.region, ca)
        self._bus.publish(a.CaCertificateUpdated(scope, ca))
        return ca

    def delete_ca_certificate(self, scope: Scope, ca_id: str) -> None:
        ca = self.require_ca(scope, ca_id)
        if ca.status == "ACTIVE":
            raise certificate_state("CA certificate must be deactivated (not ACTIVE) before "
                                    f"deletion. Id: {ca.id}")
        self._store.delete_ca_certificate(scope.region, ca.id)
        self._bus.publish(a.CaCertificateDeleted(scope, ca))

    def list_ca_certificates(self, scope: Scope, after: int, limit: int, ascending: bool
                             ) -> tuple[list[CaCertificateRecord], int | None]:
        return self._store.list_ca_certificates(scope.region, after, limit, ascending)

    def issuing_ca(self, scope: Scope, cert: x509.Certificate) -> CaCertificateRecord | None:
        """The registered CA certificate whose key signed `cert` (any status), for
        RegisterCertificate and just-in-time registration."""
        for ca in self._store.ca_certificates(scope.region):
            ca_cert = load_certificate(ca.pem.encode())
            if ca_cert.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def auto_register_certificate(self, scope: Scope, cert_der: bytes
                                  ) -> tuple[CertificateRecord, CaCertificateRecord] | None:
        """Just-in-time registration: an unregistered certificate signed by an ACTIVE
        registered CA whose auto-registration is ENABLE is registered as PENDING_ACTIVATION.
        Returns (certificate, CA), or None if the certificate does not qualify."""
        if self._store.get_certificate(scope.region, certificate_id(cert_der)) is not None:
            return None
        cert = x509.load_der_x509_certificate(cert_der)
        ca = self.issuing_ca(scope, cert)
        if ca is None or ca.status != "ACTIVE" or ca.auto_registration != "ENABLE":
            return None
        rec = self._add(scope, certificate_record(cert, "PENDING_ACTIVATION", ca.id),
                        just_in_time=True)
        return rec, ca
