"""The registry: things, thing types, thing groups (static) and thing principals."""

from __future__ import annotations

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.registry import api
from fleetsim.localcore.features.registry.service import RegistryService

NAME = "registry"


def install(ctx: FeatureContext) -> None:
    service = RegistryService(ctx.db, ctx.bus, ctx.services)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
