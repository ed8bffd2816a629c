"""Device shadows (classic and named) over MQTT and HTTP, as the Device Shadow service does."""

from __future__ import annotations

import time
from functools import partial

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.shadows import api, mqtt
from fleetsim.localcore.features.shadows.service import ShadowService

NAME = "shadows"


def install(ctx: FeatureContext) -> None:
    service = ShadowService(ctx.db, time.time, ctx.bus.publish)
    service.forget_old_deletions()
    ctx.services.provide(NAME, service)
    publish = partial(ctx.broker.publish_internal, qos=1)
    ctx.http.add(api.operations, api.HttpShadows(service, publish))
    mqtt.register(ctx.broker.router, service, ctx.broker_scope.region)
