"""S3 on local core's API port (routed by the SigV4 service `s3`, or a SigV2 signature, which
only S3 still accepts): buckets and objects kept in the state directory, so they survive a
restart."""

from __future__ import annotations

import time

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.s3.front import S3Front
from fleetsim.localcore.features.s3.service import S3Service
from fleetsim.localcore.features.s3.store import S3Store

NAME = "s3"


def install(ctx: FeatureContext) -> None:
    service = S3Service(S3Store(ctx.db, ctx.config.state_dir / "s3"), time.time)
    ctx.services.provide(NAME, service)
    hosts = tuple(dict.fromkeys(("localhost", ctx.config.host.lower())))
    ctx.http.add_service("s3", S3Front(service, ctx.config.account_id, hosts).handle)
