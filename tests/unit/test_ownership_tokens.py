"""Fleet provisioning's certificateOwnershipToken ("Device provisioning MQTT API"): valid one
hour; a certificate neither activated nor attached by then is deleted with its token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleetsim.localcore.core import LocalCore, LocalCoreConfig
from fleetsim.localcore.features.provisioning.service import (
    OWNERSHIP_TOKEN_TTL_S,
    ProvisioningService,
)
from fleetsim.localcore.scope import Scope
from fleetsim.pki import build_csr, generate_key

SCOPE = Scope("123456789012", "us-east-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LocalCore]:
    c = LocalCore(LocalCoreConfig(state_dir=tmp_path, api_port=0, mqtt_port=0))
    yield c
    await c.bus.close()
    c.db.close()


def claim(service: ProvisioningService, name: str) -> str:
    cert, _token = service.create_certificate_from_csr(
        SCOPE, build_csr(generate_key("ec-p256"), name).decode())
    assert cert.status == "PENDING_ACTIVATION"
    return cert.id


async def test_an_unused_certificate_goes_when_its_token_expires(core: LocalCore) -> None:
    clock, scheduled = Clock(), []
    service = ProvisioningService(core.db, core.services, SCOPE.account_id, clock=clock,
                                  schedule=lambda delay, callback: scheduled.append(delay))
    unused, activated, attached = (claim(service, n) for n in ("unused", "activated", "attached"))
    assert scheduled == [OWNERSHIP_TOKEN_TTL_S] * 3  # each expiry is scheduled on time
    certificates, registry = core.services.certificates, core.services.registry
    certificates.update_certificate(SCOPE, activated, "ACTIVE")
    registry.create_thing(SCOPE, "dev", None, {})
    registry.attach_thing_principal(SCOPE, "dev", SCOPE.arn("cert", attached))

    clock.now += OWNERSHIP_TOKEN_TTL_S - 1
    assert service.expire_ownership_tokens() == 0  # still within the hour
    clock.now += 2
    assert service.expire_ownership_tokens() == 1
    assert certificates.get_certificate(SCOPE, unused) is None
    assert certificates.get_certificate(SCOPE, activated) is not None
    assert certificates.get_certificate(SCOPE, attached) is not None
    assert service.expire_ownership_tokens() == 0  # the tokens themselves are gone
