"""Provisioning by template: RegisterThing, provisioning templates (and versions) as resources,
and fleet provisioning by claim over MQTT. Bulk registration tasks call
`ProvisioningService.provision_from_template` (`ctx.services.get("provisioning")`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.provisioning import api, mqtt
from fleetsim.localcore.features.provisioning.service import ProvisioningService

NAME = "provisioning"


def _schedule(delay: float, callback: Callable[[], object]) -> None:
    # Without a running loop (a synchronous caller) the next request sweeps instead.
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().call_later(delay, callback)


def install(ctx: FeatureContext) -> None:
    service = ProvisioningService(ctx.db, ctx.services, ctx.config.account_id,
                                  schedule=_schedule)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
    mqtt.register(ctx.broker.router, service, ctx.broker_scope)
    _schedule(0, service.expire_ownership_tokens)  # tokens that expired while stopped
