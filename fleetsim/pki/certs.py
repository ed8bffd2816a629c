"""Certificates: CAs that issue them, CSRs, and AWS IoT's certificate id."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetsim.pki.keys import PrivateKey, generate_key

# AWS IoT issues device certificates valid until the end of 2049.
DEVICE_CERT_NOT_AFTER = dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def certificate_id(cert_der: bytes) -> str:
    """AWS IoT's certificate id: the SHA-256 of the DER certificate, in lowercase hex."""
    return hashlib.sha256(cert_der).hexdigest()


def load_certificate(pem_or_der: bytes) -> x509.Certificate:
    if pem_or_der.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_certificate(pem_or_der)
    return x509.load_der_x509_certificate(pem_or_der)


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def public_key_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_id(key: PublicKeyTypes) -> str:
    """A key's fingerprint: the SHA-256 of its DER SubjectPublicKeyInfo, in lowercase hex. A
    certificate and the CSR (or private key) it was issued for share it."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


SUBJECT_OIDS = {"country": NameOID.COUNTRY_NAME, "organization": NameOID.ORGANIZATION_NAME,
                "organizational_unit": NameOID.ORGANIZATIONAL_UNIT_NAME,
                "state": NameOID.STATE_OR_PROVINCE_NAME,
                "dn_qualifier": NameOID.DN_QUALIFIER,
                "serial_number": NameOID.SERIAL_NUMBER}


def subject_name(common_name: str, **extra: str) -> x509.Name:
    """A subject: the fields of `SUBJECT_OIDS` given (empty ones left out), then the CN."""
    unknown = set(extra) - set(SUBJECT_OIDS)
    if unknown:
        raise ValueError(f"unknown subject field(s) {', '.join(sorted(unknown))}: use "
                         f"{', '.join(SUBJECT_OIDS)}")
    attrs = [x509.NameAttribute(SUBJECT_OIDS[k], v) for k, v in extra.items() if v]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def build_csr(key: PrivateKey, common_name: str, country: str | None = None) -> bytes:
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        subject_name(common_name, country=country or "")
    ).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class CertificateAuthority:
    """A CA that can sign device, server and verification certificates."""

    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(cls, common_name: str, key_type: str = "ec-p256", days: int = 3650,
               organization: str | None = None) -> CertificateAuthority:
        key = generate_key(key_type)  # type: ignore[arg-type]
        name = subject_name(common_name, organization=organization or "")
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def issue(self, public_key: PublicKey, subject: x509.Name,
              not_after: dt.datetime = DEVICE_CERT_NOT_AFTER,
              server_names: list[str] | None = None) -> x509.Certificate:
        """Sign a leaf certificate; `server_names` (DNS names or IPs) makes it a server cert."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if server_names:
            sans: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(self.key, hashes.SHA256())

    def issue_for_csr(self, csr_pem: bytes) -> x509.Certificate:
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the CSR's signature does not verify")
        return self.issue(csr.public_key(), csr.subject)  # type: ignore[arg-type]

    def issue_device(self, public_key: PublicKey,
                     common_name: str = "AWS IoT Certificate") -> x509.Certificate:
        return self.issue(public_key, subject_name(common_name))

    def issue_server(self, names: list[str],
                     days: int = 825) -> tuple[x509.Certificate, PrivateKey]:
        key = generate_key("ec-p256")
        cert = self.issue(key.public_key(), subject_name(names[0]),
                          not_after=_now() + dt.timedelta(days=days), server_names=names)
        return cert, key
