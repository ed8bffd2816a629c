"""DescribeEndpoint: `iot:Jobs` (the Jobs device HTTP API, "Jobs device HTTP API") is local
core's API host and port, where `iot-jobs-data` is served; every other type is local core's
MQTT endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.context import FeatureContext

NAME = "endpoint"
operations = Operations()


class EndpointService:
    def __init__(self, ctx: FeatureContext):
        self._ctx = ctx

    def address(self, endpoint_type: str | None = None) -> str:
        if endpoint_type == "iot:Jobs":
            return urlsplit(self._ctx.api_url()).netloc
        return self._ctx.endpoint_address()


@operations.iot("DescribeEndpoint")
def describe_endpoint(call: Call[EndpointService], p: dict[str, Any]) -> dict[str, Any]:
    return {"endpointAddress": call.service.address(p.get("endpointType"))}


def install(ctx: FeatureContext) -> None:
    service = EndpointService(ctx)
    ctx.services.provide(NAME, service)
    ctx.http.add(operations, service)
