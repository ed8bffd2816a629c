"""Local core does not verify a registered certificate's chain again at every handshake
(`fleetsim.localcore.registered_chains`), in a local core run in this process: certificates it
issued and certificates of a registered CA connect with the shortcut taken; a certificate it
does not hold, or outside its chain's validity, is verified in full, and refused as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.localcore import registered_chains
from fleetsim.localcore.core import LocalCore, LocalCoreConfig
from fleetsim.pki import (
    CertificateAuthority,
    certificate_pem,
    generate_key,
    private_key_pem,
    write_private,
)
from tests.helpers import aws_client
from tests.mqtt_testing import ALLOW_ALL_DOCUMENT, Device, RawClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LocalCore]:
    c = LocalCore(LocalCoreConfig(state_dir=tmp_path / "state", api_port=0, mqtt_port=0))
    await c.start()
    yield c
    await c.stop()


async def call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, **kwargs)  # the API is served by this loop


def device(core: LocalCore, tmp: Path, name: str, cert_pem: bytes, key_pem: bytes) -> Device:
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert_pem)
    write_private(key_path, key_pem)
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    return Device(name, cert_path, key_path, der, name, core.ca.root_ca_path)


async def connack(core: LocalCore, dev: Device) -> int | None:
    """The CONNACK's return code, or None when the connection ended before one."""
    assert core.endpoints is not None
    try:
        client = await RawClient.open(core.endpoints.mqtt_port, dev)
    except OSError:  # ssl.SSLError included: the handshake was refused
        return None
    try:
        reply = await client.connect(dev.name)
        return None if reply is None or reply[0] != 0x20 else reply[1][1]
    finally:
        await client.close()


async def registered_ca(iot: Any) -> CertificateAuthority:
    ca = CertificateAuthority.create("chains CA")
    code = (await call(iot.get_registration_code))["registrationCode"]
    verification = ca.issue_device(generate_key().public_key(), code)
    await call(iot.register_ca_certificate, caCertificate=certificate_pem(ca.cert).decode(),
               verificationCertificate=certificate_pem(verification).decode(), setAsActive=True)
    return ca


async def test_registered_certificates_connect_without_their_chain_verified_again(
        core: LocalCore, tmp_path: Path) -> None:
    assert core.endpoints is not None
    iot = aws_client(core.endpoints.api_url)
    await call(iot.create_policy, policyName="all", policyDocument=json.dumps(ALLOW_ALL_DOCUMENT))
    made = await call(iot.create_keys_and_certificate, setAsActive=True)
    ca = await registered_ca(iot)
    key = generate_key()
    byo = ca.issue_device(key.public_key(), "byo")
    registered = await call(iot.register_certificate, status="ACTIVE",
                            certificatePem=certificate_pem(byo).decode())
    for arn in (made["certificateArn"], registered["certificateArn"]):
        await call(iot.attach_policy, policyName="all", target=arn)
    devices = [device(core, tmp_path, "made", made["certificatePem"].encode(),
                      made["keyPair"]["PrivateKey"].encode()),
               device(core, tmp_path, "byo", certificate_pem(byo), private_key_pem(key))]
    for dev, issuer in zip(devices, (core.ca.authority.cert, ca.cert), strict=True):
        skipped = core.registered_chains.skipped
        assert await connack(core, dev) == 0
        assert core.registered_chains.skipped == skipped + 1
        principal = core.authority.principal_for_certificate(dev.cert_der)
        assert principal is not None
        leaf = x509.load_der_x509_certificate(dev.cert_der)
        assert principal.valid_from == max(leaf.not_valid_before_utc.timestamp(),
                                           issuer.not_valid_before_utc.timestamp())
        assert principal.valid_until == min(leaf.not_valid_after_utc.timestamp(),
                                            issuer.not_valid_after_utc.timestamp())
    # A revoked certificate: its chain is taken as verified, the connection is still refused
    # after the handshake, as before.
    await call(iot.update_certificate, certificateId=made["certificateId"], newStatus="REVOKED")
    skipped = core.registered_chains.skipped
    assert await connack(core, devices[0]) is None
    assert core.registered_chains.skipped == skipped + 1


async def test_a_certificate_of_an_unknown_ca_is_verified_in_full_and_refused(
        core: LocalCore, tmp_path: Path) -> None:
    key = generate_key()
    stranger = CertificateAuthority.create("unregistered").issue_device(key.public_key(), "x")
    dev = device(core, tmp_path, "stranger", certificate_pem(stranger), private_key_pem(key))
    assert await connack(core, dev) is None
    assert core.registered_chains.skipped == 0


async def test_outside_its_validity_a_registered_chain_is_verified_in_full(
        core: LocalCore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert core.endpoints is not None
    iot = aws_client(core.endpoints.api_url)
    await call(iot.create_policy, policyName="all", policyDocument=json.dumps(ALLOW_ALL_DOCUMENT))
    made = await call(iot.create_keys_and_certificate, setAsActive=True)
    await call(iot.attach_policy, policyName="all", target=made["certificateArn"])
    dev = device(core, tmp_path, "late", made["certificatePem"].encode(),
                 made["keyPair"]["PrivateKey"].encode())
    principal = core.authority.principal_for_certificate(dev.cert_der)
    assert principal is not None
    # The shortcut's clock past the window (OpenSSL's is not: the full verification passes).
    monkeypatch.setattr(registered_chains.time, "time", lambda: principal.valid_until)
    assert await connack(core, dev) == 0
    assert core.registered_chains.skipped == 0
