"""CloudWatch Logs: log groups, streams and events over the `logs` JSON API, and
`put_events` for the logs other features write (Lambda, AWS IoT logging)."""

from __future__ import annotations

import time

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.logs import api
from fleetsim.localcore.features.logs.service import LogsService

NAME = "logs"


def clock_ms() -> int:
    return int(time.time() * 1000)


def install(ctx: FeatureContext) -> None:
    service = LogsService(ctx.db, clock_ms)
    service.expire_all()
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
