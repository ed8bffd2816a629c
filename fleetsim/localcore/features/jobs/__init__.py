"""IoT Jobs: the control plane (`iot` jobs, executions, templates), the device side over MQTT
(`$aws/things/<thing>/jobs/...`) and HTTP (`iot-jobs-data`), rollouts, aborts, retries and
timeouts on timers that survive a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from functools import partial

from fleetsim.errors import UserError
from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.jobs import api
from fleetsim.localcore.features.jobs.mqtt import JobsTopics
from fleetsim.localcore.features.jobs.service import JobsService
from fleetsim.localcore.features.registry import announcements as r

NAME = "jobs"
# How many seconds a minute of rollout rates and execution timeouts lasts: 60, unless tests and
# demos shorten it (a timeout of "1 minute" then ends after this many seconds).
MINUTE_ENV = "FLEETSIM_LOCAL_JOBS_MINUTE_S"


def _minute() -> float:
    text = os.environ.get(MINUTE_ENV, "")
    try:
        value = float(text) if text else 60.0
    except ValueError:
        raise UserError(f"${MINUTE_ENV} is {text!r}: it must be a number of seconds") from None
    if not 0 < value <= 60:
        raise UserError(f"${MINUTE_ENV} is {text!r}: it must be more than 0 and at most 60")
    return value


def install(ctx: FeatureContext) -> None:
    service = JobsService(ctx.db, ctx.services, ctx.broker_scope.region,
                          partial(ctx.broker.publish_internal, qos=1), ctx.bus.publish,
                          ctx.api_url, time.time, _minute())
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
    JobsTopics(service, ctx.broker_scope.region).register(ctx.broker.router)
    ctx.bus.subscribe(r.ThingAddedToGroup, lambda e: service.thing_added(e.scope, e.thing.name))
    ctx.bus.subscribe(r.ThingRemovedFromGroup,
                      lambda e: service.thing_removed(e.scope, e.thing.name))

    def start() -> None:
        service.resume()
        service.timers.start()

    # once every feature is installed and the loop runs (re-arms the timers kept in the db)
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().call_soon(start)
