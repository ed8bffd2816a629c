"""What the protocol fronts of model-driven services share (`restjson.py`, `jsonproto.py`,
`queryproto.py`): the botocore model with the handlers checked against its operations, input
validation before a handler runs (`validation.py`), calling the bound handler in the caller's
`Scope`, and turning what it raises into the protocol's error: an `AwsError` with the status
its error shape declares (400 unless it says), anything else logged with its traceback and
answered as an internal failure. A protocol front subclasses `ModelService` and says how it
reads a request, renders an answer and renders an error."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from botocore.loaders import Loader

from fleetsim.localcore.api.operations import Bound, Call
from fleetsim.localcore.api.validation import ShapeValidator, validation_message
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.scope import Scope

log = logging.getLogger(__name__)

_INT_TYPES = {"integer", "long"}
_FLOAT_TYPES = {"float", "double"}

Params = dict[str, Any]


def error_statuses(shapes: dict[str, Any]) -> dict[str, int]:
    """The HTTP status of each error shape of a service model (400 unless it says)."""
    return {name: shape.get("error", {}).get("httpStatusCode", 400)
            for name, shape in shapes.items() if shape.get("exception")}


def scalar(value: str, kind: str) -> Any:
    """A value sent as text (query string, header, form field) as its member's type. A value
    that is not of that type is kept as the string it is, for validation to name it."""
    try:
        if kind in _INT_TYPES:
            return int(value)
        if kind == "boolean":
            return {"true": True, "false": False}.get(value, value)
        if kind in _FLOAT_TYPES:
            return float(value)
        if kind == "timestamp":
            try:
                return float(value)
            except ValueError:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return value
    return value


class ModelService:
    """One service served from its botocore model; a protocol front subclasses it."""

    # The answer to a handler failing unexpectedly (the protocol front may name it otherwise).
    internal_failure = AwsError("InternalFailure", "An unexpected error has occurred.",
                                status=500)

    def __init__(self, service: str, handlers: dict[str, Bound], account_id: str,
                 region_of: Callable[[web.Request], str], model: dict[str, Any] | None,
                 member_name: Callable[[str], str] | None = None):
        self.service = service
        self.account_id = account_id
        self.region_of = region_of
        self.model = model or Loader().load_service_model(service, "service-2")
        self.shapes: dict[str, Any] = self.model["shapes"]
        unknown = set(handlers) - set(self.model["operations"])
        if unknown:
            raise ValueError(f"handlers for operations {service} does not have: {unknown}")
        self.validator = ShapeValidator(self.shapes, member_name)
        self.error_status = error_statuses(self.shapes)

    def validate(self, input_shape: str | None, code: str, params: Params) -> None:
        """AwsError `code` in AWS's wording if `params` break the operation's input shape."""
        if input_shape is None:
            return
        problems = self.validator.members(input_shape, params)
        if problems:
            raise AwsError(code, validation_message(problems))

    async def answer(self, request: web.Request, operation: str, handler: Bound | None,
                     read: Callable[[], Awaitable[Params]],
                     render: Callable[[Any], web.Response]) -> web.Response:
        """The answer to one call of `operation`: its parameters `read` (and validated) from
        the request, the handler called with them, its result `render`ed; or the error."""
        try:
            if handler is None:
                raise AwsError("NotImplementedException",
                               f"local core does not implement {self.service}:{operation}",
                               status=501)
            params = await read()
            call = Call(handler.service, Scope(self.account_id, self.region_of(request)))
            result = handler.handler(call, params)
            return render(await result if handler.is_async else result)
        except AwsError as e:
            return self.error_response(e)
        except Exception:
            log.exception("%s:%s failed", self.service, operation)
            return self.error_response(self.internal_failure)

    def error_response(self, error: AwsError) -> web.Response:
        status = error.status or self.error_status.get(error.code, 400)
        response = self.error_body(error, status)
        if status == 413:
            response.force_close()  # the rest of the body is not read
        return response

    def error_body(self, error: AwsError, status: int) -> web.Response:
        """`error` in the protocol's form, with HTTP `status`."""
        raise NotImplementedError
