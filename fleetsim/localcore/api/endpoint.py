"""DescribeEndpoint: every endpoint type is local core's MQTT endpoint."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.operations import iot


@iot("DescribeEndpoint")
def describe_endpoint(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    endpoints = ctx.core.endpoints
    assert endpoints is not None  # the API starts after the broker
    return {"endpointAddress": endpoints.endpoint_address}
