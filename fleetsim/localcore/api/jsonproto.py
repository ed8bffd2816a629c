"""The AWS JSON protocol (botocore `metadata.protocol` "json": CloudWatch Logs, ...), driven by
the service's botocore model like `restjson.py`.

Every call is `POST /` with `X-Amz-Target: <targetPrefix>.<Operation>` and a JSON body of the
input members (`application/x-amz-json-<jsonVersion>`); the answer is the output members as
JSON, and an error is `{"__type": code, "message": ...}` with the status of the error shape
(400 unless the model says). Input is checked against the operation's input shape before the
handler runs (`validation.py`), with the validation error the operation declares.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fleetsim.localcore.api.body import read_capped
from fleetsim.localcore.api.modelservice import ModelService, Params
from fleetsim.localcore.api.operations import Bound
from fleetsim.localcore.api.restjson import dumps, parse_json
from fleetsim.localcore.api.validation import validation_error_code
from fleetsim.localcore.errors import AwsError


@dataclass(frozen=True, slots=True)
class _Operation:
    name: str
    input_shape: str | None
    members: frozenset[str]
    error_code: str
    handler: Bound | None


class JsonService(ModelService):
    """One JSON-protocol service (logs, ...), served from its model."""

    def __init__(self, service: str, handlers: dict[str, Bound], account_id: str,
                 region_of: Callable[[web.Request], str],
                 model: dict[str, Any] | None = None):
        super().__init__(service, handlers, account_id, region_of, model)
        metadata = self.model["metadata"]
        self._prefix = metadata["targetPrefix"] + "."
        self._content_type = f"application/x-amz-json-{metadata.get('jsonVersion', '1.0')}"
        shapes = self.shapes
        self._operations: dict[str, _Operation] = {}
        for name, op in self.model["operations"].items():
            shape = op.get("input", {}).get("shape")
            self._operations[name] = _Operation(
                name, shape, frozenset(shapes[shape].get("members", {}) if shape else ()),
                validation_error_code(op), handlers.get(name))

    async def handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        op = self._operations.get(target.removeprefix(self._prefix)) \
            if target.startswith(self._prefix) else None
        if op is None or request.method != "POST":
            return self.error_response(AwsError(
                "UnknownOperationException",
                f"local core serves no {self.service} operation {target or '(no X-Amz-Target)'}"
                f" at {request.method} {request.path}"))
        return await self.answer(request, op.name, op.handler,
                                 lambda: self._read(request, op), self._render)

    def _render(self, result: Params | None) -> web.Response:
        return web.Response(status=200, body=dumps(result or {}),
                            content_type=self._content_type,
                            headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def _read(self, request: web.Request, op: _Operation) -> Params:
        raw = await read_capped(request)
        body = parse_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise AwsError("SerializationException", "The request body must be a JSON object")
        params = {k: v for k, v in body.items() if k in op.members and v is not None}
        self.validate(op.input_shape, op.error_code, params)
        return params

    def error_body(self, error: AwsError, status: int) -> web.Response:
        return web.Response(status=status,
                            body=dumps({"__type": error.code, "message": error.message,
                                        **error.fields}),
                            content_type=self._content_type,
                            headers={"x-amzn-RequestId": str(uuid.uuid4())})
