"""AWS IoT logging: v1 and v2 logging options, v2 levels per target, and the log entries the
broker's activity produces, written to CloudWatch Logs through the logs feature."""

from __future__ import annotations

import time

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.iotlogging import api
from fleetsim.localcore.features.iotlogging.service import LoggingService

NAME = "iotlogging"


def install(ctx: FeatureContext) -> None:
    service = LoggingService(ctx.db, ctx.bus, ctx.services, ctx.broker, ctx.broker_scope,
                             lambda: int(time.time() * 1000))
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
