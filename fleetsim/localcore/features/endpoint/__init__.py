"""DescribeEndpoint: every endpoint type is local core's MQTT endpoint."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.context import FeatureContext

NAME = "endpoint"
operations = Operations()


class EndpointService:
    def __init__(self, ctx: FeatureContext):
        self._ctx = ctx

    def address(self) -> str:
        return self._ctx.endpoint_address()


@operations.iot("DescribeEndpoint")
def describe_endpoint(call: Call[EndpointService], p: dict[str, Any]) -> dict[str, Any]:
    return {"endpointAddress": call.service.address()}


def install(ctx: FeatureContext) -> None:
    service = EndpointService(ctx)
    ctx.services.provide(NAME, service)
    ctx.http.add(operations, service)
