"""Devices of one target share `SSLContext`s (one per kind of key), or with the openssl backend
one pyOpenSSL context, against a real local core: each device must present its own certificate
whatever was loaded before it. Local core tells
which certificate a client presented in `$aws/events/presence/connected/<clientId>`'s
principalIdentifier (the certificate id, as AWS IoT's "Connect/Disconnect events" say).

The regression: with one context for every device, an EC P-256 observer connected first and an
RSA device (CreateKeysAndCertificate makes RSA 2048 keys, as AWS does) connected after it
presented the observer's certificate. OpenSSL keeps one certificate and key per key type in a
context (RSA, EC, ...): loading the RSA chain left the observer's EC one beside it, SSL_new
copied both, and under TLS 1.3 the client signs with the first of the server's signature
algorithms it has a key for (ECDSA comes first), so it sent the observer's certificate."""

from __future__ import annotations

from typing import Any

import pytest

from fleetsim.device import DeviceIdentity, DeviceSession, Observer, TlsContextFactory
from fleetsim.device.tls import TLS_BACKENDS, DeviceTls, TlsBackend
from fleetsim.device.tls_openssl import OpenSslDeviceTls
from fleetsim.metrics import Metrics
from fleetsim.pki import generate_key, private_key_pem
from fleetsim.target import Target
from tests.helpers import ALLOW_ALL_DOCUMENT
from tests.integration.test_device_session import Provisioner

pytestmark = pytest.mark.timeout(60)
PRESENCE = "$aws/events/presence/connected/"


@pytest.fixture(scope="module")
def prov(core: Any, tmp_path_factory: pytest.TempPathFactory) -> Provisioner:
    return Provisioner(core, tmp_path_factory.mktemp("tls-shared"))


def ec_identity(prov: Provisioner, name: str) -> DeviceIdentity:
    """A thing whose EC P-256 key is made here and certified from a CSR."""
    identity = DeviceIdentity("itest", 0, name, "ec-p256", private_key_pem(generate_key()))
    prov.iot.create_thing(thingName=name)
    made = prov.iot.create_certificate_from_csr(
        certificateSigningRequest=identity.csr_pem().decode(), setAsActive=True)
    prov.iot.attach_policy(policyName=prov.policy(ALLOW_ALL_DOCUMENT),
                           target=made["certificateArn"])
    prov.iot.attach_thing_principal(thingName=name, principal=made["certificateArn"])
    return identity.with_certificate(made["certificatePem"], made["certificateArn"])


async def presented(obs: Observer, target: Target, tls: DeviceTls | OpenSslDeviceTls,
                    identity: DeviceIdentity, since: int) -> tuple[str, int]:
    """Connect `identity` over `tls`; the certificate id local core saw it present."""
    async with DeviceSession(identity, target, Metrics(), tls=tls, timeout=5):
        event = await obs.wait_for(PRESENCE + identity.thing_name, since=since)
    return str(event.data["principalIdentifier"]), event.seq + 1


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_a_device_connecting_after_the_observer_presents_its_own_certificate(
        prov: Provisioner, backend: TlsBackend) -> None:
    factory = TlsContextFactory(prov.target, backend=backend)
    observer = ec_identity(prov, f"tls-observer-{backend}")
    devices = [prov.device(f"tls-rsa-1-{backend}"),
               prov.store.save(ec_identity(prov, f"tls-ec-1-{backend}")),
               prov.device(f"tls-rsa-2-{backend}")]
    async with DeviceSession(observer, prov.target, Metrics(), timeout=5,
                             tls=factory.device_tls(observer)) as watcher, \
            Observer(watcher, [PRESENCE + "+"]) as obs:
        since = 0
        for identity in devices:  # RSA after EC, EC after RSA, RSA after EC
            tls = factory.device_tls(identity)
            seen, since = await presented(obs, prov.target, tls, identity, since)
            assert seen == identity.certificate_id, identity.thing_name


@pytest.mark.parametrize("backend", TLS_BACKENDS)
async def test_a_device_reconnecting_after_another_one_presents_its_own_certificate(
        prov: Provisioner, backend: TlsBackend) -> None:
    """stdlib: its chain is loaded again at every connect (the shared context holds whichever
    chain of its key type was loaded last); openssl: its own decoded key, every time."""
    factory = TlsContextFactory(prov.target, backend=backend)
    observer = ec_identity(prov, f"tls-observer-2-{backend}")
    first, second = prov.device(f"tls-again-1-{backend}"), prov.device(f"tls-again-2-{backend}")
    tls = factory.device_tls(first)
    async with DeviceSession(observer, prov.target, Metrics(), timeout=5,
                             tls=factory.device_tls(observer)) as watcher, \
            Observer(watcher, [PRESENCE + "+"]) as obs:
        seen, since = await presented(obs, prov.target, tls, first, 0)
        assert seen == first.certificate_id
        seen, since = await presented(obs, prov.target, factory.device_tls(second), second, since)
        assert seen == second.certificate_id
        seen, since = await presented(obs, prov.target, tls, first, since)  # the same tls again
        assert seen == first.certificate_id
