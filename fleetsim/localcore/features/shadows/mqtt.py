"""Shadow requests over MQTT: `$aws/things/<thing>/shadow[/name/<shadow>]/get|update|delete`.

The request topics are ordinary Publish/Subscribe topics, and every answer goes through the
broker to each subscriber allowed to receive it ("Device Shadow MQTT topics"), so they are
registered with `broadcast` delivery.
"""

from __future__ import annotations

import time

from fleetsim.localcore.broker.router import Handler, Reply, Request, Router
from fleetsim.localcore.features.shadows.document import encode, lenient_client_token, throttled
from fleetsim.localcore.features.shadows.service import ShadowService, topic

OPERATIONS = ("get", "update", "delete")
# "Device Shadow service quotas": in-flight, unacknowledged requests per thing per connection.
MAX_IN_FLIGHT = 10


def register(router: Router, service: ShadowService, region: str) -> None:
    """Answer the classic and named shadow topics of every thing in `region` (the region the
    broker's endpoint serves)."""

    def handler_for(operation: str) -> Handler:
        run = getattr(service, operation)

        async def handle(request: Request, reply: Reply) -> None:
            thing = request.params["thingName"]
            shadow = request.params.get("shadowName")
            if request.in_flight > MAX_IN_FLIGHT:
                error = throttled(lenient_client_token(request.payload))
                reply.publish(topic(thing, shadow, f"{operation}/rejected"),
                              encode(error.payload(int(time.time()))))
                return
            outcome = run(region, thing, shadow, request.payload)
            for suffix, payload in outcome.mqtt:
                reply.publish(topic(thing, shadow, suffix), payload)

        return handle

    for operation in OPERATIONS:
        handle = handler_for(operation)
        router.register(f"$aws/things/{{thingName}}/shadow/{operation}", handle)
        router.register(f"$aws/things/{{thingName}}/shadow/name/{{shadowName}}/{operation}",
                        handle)
