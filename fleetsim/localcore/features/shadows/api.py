"""Shadows over HTTP: the `iot-data` operations GetThingShadow, UpdateThingShadow,
DeleteThingShadow and ListNamedShadowsForThing. An accepted update or delete still publishes
its MQTT messages (`/update/accepted`, `/update/delta`, `/update/documents`,
`/delete/accepted`) to every subscriber allowed to receive them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.shadows.document import ShadowError
from fleetsim.localcore.features.shadows.service import ShadowOutcome, ShadowService, topic


@dataclass(frozen=True)
class HttpShadows:
    """What the handlers are bound to: the service, and the broker to publish through."""

    shadows: ShadowService
    publish: Callable[[str, bytes], None]


operations = Operations()
iot_data = operations.iot_data
S = Call[HttpShadows]


def _aws_error(error: ShadowError) -> AwsError:
    return AwsError(error.aws_code, error.message, status=error.code)


def _answer(call: S, thing: str, shadow: str | None, outcome: ShadowOutcome) -> dict[str, Any]:
    if outcome.error is not None:
        raise _aws_error(outcome.error)
    for suffix, payload in outcome.http:
        call.service.publish(topic(thing, shadow, suffix), payload)
    return {"payload": outcome.body}


@iot_data("GetThingShadow")
def get_thing_shadow(call: S, p: dict[str, Any]) -> dict[str, Any]:
    thing, shadow = p["thingName"], p.get("shadowName")
    return _answer(call, thing, shadow,
                   call.service.shadows.get(call.scope.region, thing, shadow))


@iot_data("UpdateThingShadow")
def update_thing_shadow(call: S, p: dict[str, Any]) -> dict[str, Any]:
    thing, shadow = p["thingName"], p.get("shadowName")
    return _answer(call, thing, shadow, call.service.shadows.update(
        call.scope.region, thing, shadow, p.get("payload") or b""))


@iot_data("DeleteThingShadow")
def delete_thing_shadow(call: S, p: dict[str, Any]) -> dict[str, Any]:
    thing, shadow = p["thingName"], p.get("shadowName")
    return _answer(call, thing, shadow,
                   call.service.shadows.delete(call.scope.region, thing, shadow))


@iot_data("ListNamedShadowsForThing")
def list_named_shadows_for_thing(call: S, p: dict[str, Any]) -> dict[str, Any]:
    try:
        page = call.service.shadows.list_named(call.scope.region, p["thingName"],
                                               p.get("pageSize"), p.get("nextToken"))
    except ShadowError as e:
        raise _aws_error(e) from e
    return page.payload()
