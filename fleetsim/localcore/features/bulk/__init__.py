"""Bulk thing registration tasks: StartThingRegistrationTask and friends, reading the input
file from the s3 feature and provisioning through the provisioning feature's templates."""

from __future__ import annotations

import asyncio
import contextlib

from fleetsim.localcore.features.bulk import api
from fleetsim.localcore.features.bulk.service import BulkService
from fleetsim.localcore.features.bulk.store import TaskStore
from fleetsim.localcore.features.context import FeatureContext

NAME = "bulk"


def install(ctx: FeatureContext) -> None:
    service = BulkService(TaskStore(ctx.db), ctx.services, ctx.api_url)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
    # resume interrupted tasks once every feature is installed (else at the first call)
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().call_soon(service.resume)
