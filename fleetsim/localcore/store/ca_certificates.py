"""CA certificates, the registration code that proves their ownership, and just-in-time
registration of the device certificates they sign."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.certificates import certificate_record
from fleetsim.localcore.store.paging import keyset, page
from fleetsim.localcore.store.records import (
    CA_COLS,
    CaCertificateRecord,
    CertificateRecord,
    as_ca,
)
from fleetsim.pki import certificate_id, load_certificate


class CaCertificatesMixin(StoreBase):
    if TYPE_CHECKING:  # provided by CertificatesMixin
        def get_certificate(self, cert_id: str) -> CertificateRecord | None: ...
        def insert_certificate(self, rec: CertificateRecord) -> CertificateRecord: ...

    @property
    def registration_code(self) -> str:
        return self._meta("registration_code") or ""

    def get_ca_certificate(self, ca_id: str) -> CaCertificateRecord | None:
        row = self._db.execute(f"SELECT {CA_COLS} FROM ca_certificates WHERE id = ?",
                               (ca_id,)).fetchone()
        return as_ca(row) if row else None

    def insert_ca_certificate(self, rec: CaCertificateRecord) -> CaCertificateRecord:
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO ca_certificates({CA_COLS}) VALUES "
                "(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.id, rec.pem, rec.status, rec.auto_registration,
                 json.dumps(rec.registration_config) if rec.registration_config else None,
                 rec.mode, rec.created, rec.last_modified, rec.customer_version,
                 rec.generation_id, rec.not_before, rec.not_after))
        rec.seq = cur.lastrowid or 0
        self._bump()
        return rec

    def update_ca_certificate(self, rec: CaCertificateRecord) -> CaCertificateRecord:
        rec.last_modified = time.time()
        rec.customer_version += 1
        rec.generation_id = str(uuid.uuid4())
        with self.transaction() as db:
            db.execute("UPDATE ca_certificates SET status = ?, auto_registration = ?, "
                       "registration_config = ?, last_modified = ?, customer_version = ?, "
                       "generation_id = ? WHERE id = ?",
                       (rec.status, rec.auto_registration,
                        json.dumps(rec.registration_config) if rec.registration_config else None,
                        rec.last_modified, rec.customer_version, rec.generation_id, rec.id))
        self._bump()
        return rec

    def delete_ca_certificate(self, ca_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM ca_certificates WHERE id = ?", (ca_id,))
        self._bump()

    def list_ca_certificates(self, after: int, limit: int, ascending: bool = False
                             ) -> tuple[list[CaCertificateRecord], int | None]:
        rows = keyset(self._db, "ca_certificates", CA_COLS, "seq", after, limit, ascending)
        return page(rows, limit, as_ca, lambda c: c.seq)

    def ca_certificates(self) -> list[CaCertificateRecord]:
        return [as_ca(r) for r in self._db.execute(f"SELECT {CA_COLS} FROM ca_certificates")]

    def issuing_ca(self, cert: x509.Certificate) -> CaCertificateRecord | None:
        """The registered CA certificate whose key signed `cert` (any status), for
        RegisterCertificate and just-in-time registration."""
        for ca in self.ca_certificates():
            ca_cert = load_certificate(ca.pem.encode())
            if ca_cert.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def auto_register_certificate(self, cert_der: bytes
                                  ) -> tuple[CertificateRecord, CaCertificateRecord] | None:
        """Just-in-time registration: an unregistered certificate signed by an ACTIVE
        registered CA whose auto-registration is ENABLE is registered as PENDING_ACTIVATION.
        Returns (certificate, CA), or None if the certificate does not qualify."""
        if self.get_certificate(certificate_id(cert_der)) is not None:
            return None
        cert = x509.load_der_x509_certificate(cert_der)
        ca = self.issuing_ca(cert)
        if ca is None or ca.status != "ACTIVE" or ca.auto_registration != "ENABLE":
            return None
        return self.insert_certificate(certificate_record(cert, "PENDING_ACTIVATION", ca.id)), ca
