"""The rules engine: topic rules as resources (`api.py`, `service.py`), AWS IoT SQL (`sql/`),
substitution templates, and rule actions run on every message the broker routes
(`engine.py`, `runner.py`)."""

from __future__ import annotations

from fleetsim.localcore.bus import MessagePublished
from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.rules import api
from fleetsim.localcore.features.rules.engine import RulesEngine
from fleetsim.localcore.features.rules.runner import ActionRunner
from fleetsim.localcore.features.rules.service import RulesService

NAME = "rules"


def install(ctx: FeatureContext) -> None:
    service = RulesService(ctx.db)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
    engine = RulesEngine(service, ActionRunner(ctx.services, ctx.broker, ctx.broker_scope),
                         ctx.broker_scope)
    service.on_change(engine.reload)
    ctx.bus.subscribe(MessagePublished, engine.on_message)
