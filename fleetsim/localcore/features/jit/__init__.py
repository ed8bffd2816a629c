"""Just-in-time registration and provisioning (JITR/JITP): the broker's unknown-certificate
hook. Needs the certificates feature, and the provisioning feature for JITP (looked up at use).
"""

from __future__ import annotations

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.jit.service import JitService

NAME = "jit"


def install(ctx: FeatureContext) -> None:
    broker = ctx.broker
    service = JitService(ctx.services, ctx.broker_scope,
                         lambda topic, payload: broker.publish_internal(topic, payload, qos=1))
    ctx.services.provide(NAME, service)
    broker.unknown_certificate = service.on_unknown_certificate
