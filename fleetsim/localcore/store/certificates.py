"""Device certificates: the record for a new certificate, status changes, deletion."""

from __future__ import annotations

import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.paging import keyset, page
from fleetsim.localcore.store.records import CERT_COLS, CertificateRecord, as_cert
from fleetsim.pki import certificate_id, certificate_pem


def certificate_record(cert: x509.Certificate, status: str, ca_id: str | None = None,
                       mode: str = "DEFAULT") -> CertificateRecord:
    """A new registry record for `cert` (id = SHA-256 of its DER encoding)."""
    der = cert.public_bytes(Encoding.DER)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    now = time.time()
    return CertificateRecord(
        certificate_id(der), certificate_pem(cert).decode(), status, ca_id, mode,
        str(cns[0].value) if cns else None, now, now, 1, str(uuid.uuid4()),
        cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())


class CertificatesMixin(StoreBase):
    def get_certificate(self, cert_id: str) -> CertificateRecord | None:
        row = self._db.execute(f"SELECT {CERT_COLS} FROM certificates WHERE id = ?",
                               (cert_id,)).fetchone()
        return as_cert(row) if row else None

    def insert_certificate(self, rec: CertificateRecord) -> CertificateRecord:
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO certificates({CERT_COLS}) VALUES "
                "(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.id, rec.pem, rec.status, rec.ca_id, rec.mode, rec.subject_cn, rec.created,
                 rec.last_modified, rec.customer_version, rec.generation_id, rec.not_before,
                 rec.not_after))
        rec.seq = cur.lastrowid or 0
        self._bump()
        return rec

    def set_certificate_status(self, rec: CertificateRecord, status: str) -> CertificateRecord:
        now = time.time()
        gen = str(uuid.uuid4())
        with self.transaction() as db:
            db.execute("UPDATE certificates SET status = ?, last_modified = ?, "
                       "customer_version = customer_version + 1, generation_id = ? WHERE id = ?",
                       (status, now, gen, rec.id))
        self._bump()
        rec.status, rec.last_modified, rec.generation_id = status, now, gen
        rec.customer_version += 1
        return rec

    def delete_certificate(self, cert_id: str) -> None:
        arn = self.arn("cert", cert_id)
        with self.transaction() as db:
            db.execute("DELETE FROM certificates WHERE id = ?", (cert_id,))
            db.execute("DELETE FROM policy_targets WHERE target = ?", (arn,))
        self._bump()

    def list_certificates(self, after: int, limit: int, ascending: bool = False,
                          ca_id: str | None = None) -> tuple[list[CertificateRecord], int | None]:
        where, args = (("ca_id = ?",), (ca_id,)) if ca_id is not None else ((), ())
        rows = keyset(self._db, "certificates", CERT_COLS, "seq", after, limit, ascending,
                      where, args)
        return page(rows, limit, as_cert, lambda c: c.seq)
