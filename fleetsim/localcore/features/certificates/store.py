"""The certificates feature's tables: certificates, ca_certificates, registration_codes. Only
`CertificatesService` uses this module."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

from fleetsim.localcore.db import Database, columns
from fleetsim.localcore.features.certificates.records import (
    CaCertificateRecord,
    CertificateRecord,
)
from fleetsim.localcore.paging import keyset, page

PRINCIPAL_TABLES = ("certificates",)

CERT_COLS = ("seq, id, pem, status, ca_id, mode, subject_cn, created, last_modified, "
             "customer_version, generation_id, not_before, not_after")
CA_COLS = ("seq, id, pem, status, auto_registration, registration_config, mode, created, "
           "last_modified, customer_version, generation_id, not_before, not_after")


def as_cert(row: sqlite3.Row) -> CertificateRecord:
    return CertificateRecord(**columns(row))


def as_ca(row: sqlite3.Row) -> CaCertificateRecord:
    fields = columns(row)
    config = fields["registration_config"]
    fields["registration_config"] = json.loads(config) if config else None
    return CaCertificateRecord(**fields)


class CertificatesStore:
    def __init__(self, db: Database):
        self.db = db
        db.watch_principal_tables(*PRINCIPAL_TABLES)

    # --- device certificates -----------------------------------------------------------------

    def get_certificate(self, region: str, cert_id: str) -> CertificateRecord | None:
        row = self.db.one(f"SELECT {CERT_COLS} FROM certificates WHERE region = ? AND id = ?",
                          (region, cert_id))
        return as_cert(row) if row else None

    def insert_certificate(self, region: str, rec: CertificateRecord) -> CertificateRecord:
        with self.db.transaction() as db:
            cur = db.write(
                f"INSERT INTO certificates(region, {CERT_COLS}) VALUES "
                "(?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (region, rec.id, rec.pem, rec.status, rec.ca_id, rec.mode, rec.subject_cn,
                 rec.created, rec.last_modified, rec.customer_version, rec.generation_id,
                 rec.not_before, rec.not_after))
        rec.seq = cur.lastrowid or 0
        return rec

    def set_certificate_status(self, region: str, rec: CertificateRecord, status: str
                               ) -> CertificateRecord:
        now = time.time()
        gen = str(uuid.uuid4())
        with self.db.transaction() as db:
            db.write("UPDATE certificates SET status = ?, last_modified = ?, "
                     "customer_version = customer_version + 1, generation_id = ? "
                     "WHERE region = ? AND id = ?", (status, now, gen, region, rec.id))
        rec.status, rec.last_modified, rec.generation_id = status, now, gen
        rec.customer_version += 1
        return rec

    def delete_certificate(self, region: str, cert_id: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM certificates WHERE region = ? AND id = ?", (region, cert_id))

    def list_certificates(self, region: str, after: int, limit: int, ascending: bool = False,
                          ca_id: str | None = None) -> tuple[list[CertificateRecord], int | None]:
        where: tuple[str, ...] = ("region = ?",)
        args: tuple[str, ...] = (region,)
        if ca_id is not None:
            where, args = (*where, "ca_id = ?"), (*args, ca_id)
        rows = keyset(self.db, "certificates", CERT_COLS, "seq", after, limit, ascending,
                      where, args)
        return page(rows, limit, as_cert, lambda c: c.seq)

    def ca_less_certificate_pems(self) -> list[str]:
        return [r["pem"] for r in self.db.query(
            "SELECT pem FROM certificates WHERE mode = 'SNI_ONLY' ORDER BY seq")]

    # --- CA certificates ---------------------------------------------------------------------

    def get_ca_certificate(self, region: str, ca_id: str) -> CaCertificateRecord | None:
        row = self.db.one(f"SELECT {CA_COLS} FROM ca_certificates WHERE region = ? AND id = ?",
                          (region, ca_id))
        return as_ca(row) if row else None

    def insert_ca_certificate(self, region: str, rec: CaCertificateRecord
                              ) -> CaCertificateRecord:
        with self.db.transaction() as db:
            cur = db.write(
                f"INSERT INTO ca_certificates(region, {CA_COLS}) VALUES "
                "(?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (region, rec.id, rec.pem, rec.status, rec.auto_registration,
                 json.dumps(rec.registration_config) if rec.registration_config else None,
                 rec.mode, rec.created, rec.last_modified, rec.customer_version,
                 rec.generation_id, rec.not_before, rec.not_after))
        rec.seq = cur.lastrowid or 0
        return rec

    def update_ca_certificate(self, region: str, rec: CaCertificateRecord
                              ) -> CaCertificateRecord:
        rec.last_modified = time.time()
        rec.customer_version += 1
        rec.generation_id = str(uuid.uuid4())
        with self.db.transaction() as db:
            db.write("UPDATE ca_certificates SET status = ?, auto_registration = ?, "
                     "registration_config = ?, last_modified = ?, customer_version = ?, "
                     "generation_id = ? WHERE region = ? AND id = ?",
                     (rec.status, rec.auto_registration,
                      json.dumps(rec.registration_config) if rec.registration_config else None,
                      rec.last_modified, rec.customer_version, rec.generation_id, region,
                      rec.id))
        return rec

    def delete_ca_certificate(self, region: str, ca_id: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM ca_certificates WHERE region = ? AND id = ?", (region, ca_id))

    def list_ca_certificates(self, region: str, after: int, limit: int, ascending: bool = False
                             ) -> tuple[list[CaCertificateRecord], int | None]:
        rows = keyset(self.db, "ca_certificates", CA_COLS, "seq", after, limit, ascending,
                      ("region = ?",), (region,))
        return page(rows, limit, as_ca, lambda c: c.seq)

    def ca_certificates(self, region: str) -> list[CaCertificateRecord]:
        return [as_ca(r) for r in self.db.query(
            f"SELECT {CA_COLS} FROM ca_certificates WHERE region = ? ORDER BY seq", (region,))]

    def ca_certificate_pems(self) -> list[str]:
        return [r["pem"] for r in self.db.query("SELECT pem FROM ca_certificates ORDER BY seq")]

    # --- registration codes ------------------------------------------------------------------

    def registration_code(self, region: str, new_code: str) -> str:
        """The region's code, `new_code` becoming it if it has none yet."""
        row = self.db.one("SELECT code FROM registration_codes WHERE region = ?", (region,))
        if row is not None:
            return str(row["code"])
        with self.db.transaction() as db:
            db.write("INSERT INTO registration_codes(region, code) VALUES (?, ?)",
                     (region, new_code))
        return new_code
