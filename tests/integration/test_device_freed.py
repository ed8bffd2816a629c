"""A device's clients are freed as its session ends, by reference counting: the objects of a
connected fleet are frozen out of the cyclic collector's way (`fleetsim.collector`), and a
cycle through them (aiomqtt's client and paho's hold each other) would wait for the end of the
run."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from fleetsim.device import DeviceSession, ReconnectPolicy
from fleetsim.device.tls import TlsContextFactory
from fleetsim.metrics import Metrics
from tests.integration.test_device_session import Provisioner

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def prov(core: Any, tmp_path_factory: pytest.TempPathFactory) -> Provisioner:
    return Provisioner(core, tmp_path_factory.mktemp("freed"))


@pytest.mark.parametrize(("backend", "ending"), [
    ("openssl", "close"), ("stdlib", "exit"), ("openssl", "closed while reconnecting")])
async def test_an_ended_session_frees_its_clients_without_the_cycle_collector(
        prov: Provisioner, backend: str, ending: str) -> None:
    factory = TlsContextFactory(prov.target, backend=backend)  # type: ignore[arg-type]
    identity = prov.device(f"freed-{backend}-{ending.split()[0]}")
    gc.collect()
    gc.disable()
    try:
        session = DeviceSession(identity, prov.target, Metrics(),
                                tls=factory.device_tls(identity), timeout=5,
                                reconnect=ReconnectPolicy(base=30))
        await session.__aenter__()
        await session.publish("freed/one", b"x", qos=1)
        refs: list[weakref.ref[Any]] = [weakref.ref(session.client),
                                        weakref.ref(session.client._client)]
        if ending == "close":
            assert session.close()
        elif ending == "exit":
            await session.__aexit__(None, None, None)
        else:  # lost: the session keeps the client for its next attempt, 0-30 s away
            session.drop()
            while session.connected or session._spare is None:
                await asyncio.sleep(0.01)
            assert session.close()
        del session
        # paho's client waits at most for the housekeeper's round, whose batch holds it.
        for _ in range(60):
            if all(r() is None for r in refs):
                break
            await asyncio.sleep(0.05)
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()
