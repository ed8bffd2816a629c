"""Registry events on `$aws/events/...` and their configuration."""

from __future__ import annotations

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.events import api
from fleetsim.localcore.features.events.service import EventsService

NAME = "events"


def install(ctx: FeatureContext) -> None:
    service = EventsService(ctx.db, ctx.bus, ctx.broker, ctx.broker_scope)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
