"""The AWS JSON protocol (botocore `metadata.protocol` "json": CloudWatch Logs, ...), driven by
the service's botocore model like `restjson.py`.

Every call is `POST /` with `X-Amz-Target: <targetPrefix>.<Operation>` and a JSON body of the
input members (`application/x-amz-json-<jsonVersion>`); the answer is the output members as
JSON, and an error is `{"__type": code, "message": ...}` with the status of the error shape
(400 unless the model says). Input is checked against the operation's input shape before the
handler runs (`validation.py`), with the validation error the operation declares.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from botocore.loaders import Loader

from fleetsim.localcore.api.body import read_capped
from fleetsim.localcore.api.operations import Bound, Call
from fleetsim.localcore.api.restjson import dumps, error_statuses, parse_json
from fleetsim.localcore.api.validation import (
    ShapeValidator,
    validation_error_code,
    validation_message,
)
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.scope import Scope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Operation:
    name: str
    input_shape: str | None
    members: frozenset[str]
    error_code: str
    handler: Bound | None
    is_async: bool


class JsonService:
    """One JSON-protocol service (logs, ...), served from its model."""

    def __init__(self, service: str, handlers: dict[str, Bound], account_id: str,
                 region_of: Callable[[web.Request], str],
                 model: dict[str, Any] | None = None):
        self.service = service
        self.account_id = account_id
        self.region_of = region_of
        model = model or Loader().load_service_model(service, "service-2")
        metadata = model["metadata"]
        self._prefix = metadata["targetPrefix"] + "."
        self._content_type = f"application/x-amz-json-{metadata.get('jsonVersion', '1.0')}"
        shapes: dict[str, Any] = model["shapes"]
        self._validator = ShapeValidator(shapes)
        self._error_status = error_statuses(shapes)
        unknown = set(handlers) - set(model["operations"])
        if unknown:
            raise ValueError(f"handlers for operations {service} does not have: {unknown}")
        self._operations: dict[str, _Operation] = {}
        for name, op in model["operations"].items():
            shape = op.get("input", {}).get("shape")
            bound = handlers.get(name)
            self._operations[name] = _Operation(
                name, shape, frozenset(shapes[shape].get("members", {}) if shape else ()),
                validation_error_code(op), bound,
                bound is not None and inspect.iscoroutinefunction(bound.handler))

    async def handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        op = self._operations.get(target.removeprefix(self._prefix)) \
            if target.startswith(self._prefix) else None
        if op is None or request.method != "POST":
            return self.error_response(AwsError(
                "UnknownOperationException",
                f"local core serves no {self.service} operation {target or '(no X-Amz-Target)'}"
                f" at {request.method} {request.path}"))
        try:
            if op.handler is None:
                raise AwsError("NotImplementedException",
                               f"local core does not implement {self.service}:{op.name}",
                               status=501)
            params = await self._read(request, op)
            call = Call(op.handler.service, Scope(self.account_id, self.region_of(request)))
            result = op.handler.handler(call, params)
            if op.is_async:
                result = await result
            return web.Response(status=200, body=dumps(result or {}),
                                content_type=self._content_type,
                                headers={"x-amzn-RequestId": str(uuid.uuid4())})
        except AwsError as e:
            return self.error_response(e)
        except Exception:
            log.exception("%s:%s failed", self.service, op.name)
            return self.error_response(AwsError("InternalFailure",
                                                "An unexpected error has occurred.", status=500))

    async def _read(self, request: web.Request, op: _Operation) -> dict[str, Any]:
        raw = await read_capped(request)
        body = parse_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise AwsError("SerializationException", "The request body must be a JSON object")
        params = {k: v for k, v in body.items() if k in op.members and v is not None}
        if op.input_shape is not None:
            problems = self._validator.members(op.input_shape, params)
            if problems:
                raise AwsError(op.error_code, validation_message(problems))
        return params

    def error_response(self, error: AwsError) -> web.Response:
        status = error.status or self._error_status.get(error.code, 400)
        response = web.Response(status=status,
                                body=dumps({"__type": error.code, "message": error.message,
                                            **error.fields}),
                                content_type=self._content_type,
                                headers={"x-amzn-RequestId": str(uuid.uuid4())})
        if status == 413:
            response.force_close()  # the rest of the body is not read
        return response
