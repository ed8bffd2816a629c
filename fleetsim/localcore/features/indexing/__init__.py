"""Fleet indexing: the indexing configuration, the AWS_Things (and AWS_ThingGroups) index,
search-index with AWS's query syntax, aggregations, and the membership of dynamic thing
groups (whose API the registry serves)."""

from __future__ import annotations

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.indexing import api
from fleetsim.localcore.features.indexing.service import IndexingService

NAME = "indexing"


def install(ctx: FeatureContext) -> None:
    service = IndexingService(ctx.db, ctx.bus, ctx.services, ctx.broker_scope)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
