"""Handler registries, one per service: adding an operation means writing its handler.

    from fleetsim.localcore.api.operations import iot

    @iot("DescribeThing")
    def describe_thing(ctx, p): ...

A handler takes the service context and the request parameters (member names of the
operation's input shape, already deserialised) and returns the output members as a dict
(or None); it may be a coroutine function. Errors are raised as `ApiError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, dict[str, Any]], Any]


class Operations:
    def __init__(self, service: str):
        self.service = service
        self.handlers: dict[str, Handler] = {}

    def __call__(self, name: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            if name in self.handlers:
                raise ValueError(f"{self.service}:{name} has two handlers")
            self.handlers[name] = fn
            return fn
        return register


iot = Operations("iot")
iot_data = Operations("iot-data")
iot_jobs_data = Operations("iot-jobs-data")
