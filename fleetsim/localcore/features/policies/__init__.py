"""IoT policies: documents, versions, attachments, effective policies."""

from __future__ import annotations

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.policies import api
from fleetsim.localcore.features.policies.service import PoliciesService

NAME = "policies"


def install(ctx: FeatureContext) -> None:
    service = PoliciesService(ctx.db, ctx.bus, ctx.services)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
