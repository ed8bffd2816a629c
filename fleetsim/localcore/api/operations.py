"""HTTP handlers of the AWS services local core answers, collected per feature and bound to
that feature's service.

A feature's `api.py` declares its handlers:

    operations = Operations()

    @operations.iot("DescribeThing")
    def describe_thing(call: Call[RegistryService], p: dict[str, Any]) -> dict[str, Any]:
        return wire(call.service.describe_thing(call.scope, p["thingName"]))

and its `install` binds them to its service: `ctx.http.add(operations, service)`. A handler
takes the call (the feature's service and the request's `Scope`: account and region) and the
request parameters (member names of the operation's input shape, already deserialised), and
returns the output members as a dict (or None); it may be a coroutine function. Errors are
raised as `AwsError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fleetsim.localcore.errors import invalid
from fleetsim.localcore.scope import Scope

S = TypeVar("S")

# botocore model names of the services local core serves from their models (rest-json, json
# and query protocols).
SERVICES = ("iot", "iot-data", "iot-jobs-data", "lambda", "logs", "iam")


@dataclass(frozen=True, slots=True)
class Call(Generic[S]):
    service: S
    scope: Scope


Handler = Callable[[Call[Any], dict[str, Any]], Any]

# A whole service a feature serves itself (S3: its REST-XML is not model-driven here): the
# aiohttp request and the caller's scope in, the response out.
RawService = Callable[[Any, Scope], Awaitable[Any]]


def needed(params: dict[str, Any], member: str) -> Any:
    """A member the model leaves optional but the operation cannot do without (thingName of
    UpdateThingGroupsForThing): InvalidRequestException in AWS's validation wording if absent."""
    value = params.get(member)
    if value is None:
        raise invalid(f"1 validation error detected: Value null at '{member}' failed to "
                      "satisfy constraint: Member must not be null")
    return value


@dataclass(frozen=True, slots=True)
class Bound:
    handler: Handler
    service: Any
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))


class Operations:
    """The handlers one feature declares, by (service, operation)."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], Handler] = {}

    def _register(self, service: str, name: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            if (service, name) in self.handlers:
                raise ValueError(f"{service}:{name} has two handlers")
            self.handlers[service, name] = fn
            return fn
        return register

    def iot(self, name: str) -> Callable[[Handler], Handler]:
        return self._register("iot", name)

    def iot_data(self, name: str) -> Callable[[Handler], Handler]:
        return self._register("iot-data", name)

    def iot_jobs_data(self, name: str) -> Callable[[Handler], Handler]:
        return self._register("iot-jobs-data", name)

    def lambda_(self, name: str) -> Callable[[Handler], Handler]:
        return self._register("lambda", name)

    def logs(self, name: str) -> Callable[[Handler], Handler]:
        return self._register("logs", name)

    def iam(self, name: str) -> Callable[[Handler], Handler]:
        return self._register("iam", name)


class HttpHandlers:
    """Every feature's handlers, bound to their services: what the HTTP front serves."""

    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, Bound]] = {s: {} for s in SERVICES}
        self._raw: dict[str, RawService] = {}

    def add(self, operations: Operations, service: object) -> None:
        for (model, name), handler in operations.handlers.items():
            handlers = self._by_service[model]
            if name in handlers:
                raise ValueError(f"{model}:{name} is handled by two features")
            handlers[name] = Bound(handler, service)

    def of(self, model: str) -> dict[str, Bound]:
        return self._by_service[model]

    def add_service(self, signing_name: str, handler: RawService) -> None:
        """Serve every request signed for `signing_name` (the SigV4 service) with `handler`."""
        if signing_name in self._raw or signing_name in SERVICES:
            raise ValueError(f"service {signing_name} is served twice")
        self._raw[signing_name] = handler

    def raw_services(self) -> dict[str, RawService]:
        return dict(self._raw)
