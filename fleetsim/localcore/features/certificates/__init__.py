"""Certificates: device certificates and CA certificates."""

from __future__ import annotations

from fleetsim.localcore.features.certificates import api
from fleetsim.localcore.features.certificates.service import CertificatesService
from fleetsim.localcore.features.context import FeatureContext

NAME = "certificates"


def install(ctx: FeatureContext) -> None:
    service = CertificatesService(
        ctx.db, ctx.bus, ctx.services, ctx.ca, ctx.config.keys_and_certificate_key_type,
        ctx.broker.disconnect_certificate, ctx.trust_anchor, ctx.config.region)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
