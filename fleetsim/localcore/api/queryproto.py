"""The AWS query protocol (IAM), driven by botocore's service model: form-encoded requests in
(`Action=CreateRole&RoleName=...`, lists as `Name.member.N`), XML out
(`<CreateRoleResponse><CreateRoleResult>...</CreateRoleResult><ResponseMetadata>...`), errors
as `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>` with the
code and HTTP status the model gives each error shape.

A feature registers handlers by operation name: `handler(scope, params) -> dict | None`,
raising `QueryError(shape_name, message)`; this front answers unknown actions and missing
required members itself."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from botocore.loaders import Loader

from fleetsim.localcore.scope import Scope

QueryHandler = Callable[[Scope, dict[str, Any]], dict[str, Any] | None]


class QueryError(Exception):
    """An error the model declares, by shape name (`NoSuchEntityException`)."""

    def __init__(self, shape: str, message: str):
        super().__init__(message)
        self.shape = shape
        self.message = message


@cache
def _model(service: str) -> dict[str, Any]:
    return Loader().load_service_model(service, "service-2")


def _error_code(service: str, shape: str) -> tuple[str, int, str]:
    """(code, HTTP status, Sender|Receiver) of an error shape."""
    declared = _model(service)["shapes"].get(shape, {}).get("error", {})
    status = int(declared.get("httpStatusCode", 400))
    return declared.get("code", shape), status, "Sender" if declared.get(
        "senderFault", status < 500) else "Receiver"


def _timestamp(value: Any) -> str:
    if isinstance(value, (int, float)):
        value = datetime.datetime.fromtimestamp(value, datetime.UTC)
    return str(value.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _xml(shapes: dict[str, Any], shape_name: str, value: Any) -> str:
    shape = shapes[shape_name]
    kind = shape["type"]
    if kind == "structure":
        out = []
        for name, member in shape["members"].items():
            if name in value and value[name] is not None:
                tag = member.get("locationName", name)
                out.append(f"<{tag}>{_xml(shapes, member['shape'], value[name])}</{tag}>")
        return "".join(out)
    if kind == "list":
        member = shape["member"]
        tag = member.get("locationName", "member")
        return "".join(f"<{tag}>{_xml(shapes, member['shape'], v)}</{tag}>" for v in value)
    if kind == "timestamp":
        return _timestamp(value)
    if kind == "boolean":
        return "true" if value else "false"
    return escape(str(value))


def _params(form: dict[str, str], shapes: dict[str, Any], shape_name: str | None
            ) -> dict[str, Any]:
    """Top-level members of the input shape; lists (`X.member.N`) become lists, in order."""
    if shape_name is None:
        return {}
    out: dict[str, Any] = {}
    for name, member in shapes[shape_name]["members"].items():
        kind = shapes[member["shape"]]["type"]
        if kind == "list":
            prefix = f"{name}.member."
            items = sorted((int(k[len(prefix):]), v) for k, v in form.items()
                           if k.startswith(prefix) and k[len(prefix):].isdigit())
            if items:
                out[name] = [v for _, v in items]
        elif name in form:
            value: Any = form[name]
            if kind == "integer":
                value = int(value) if value.lstrip("-").isdigit() else value
            elif kind == "boolean":
                value = value.lower() == "true"
            out[name] = value
    return out


class QueryService:
    def __init__(self, service: str, handlers: dict[str, QueryHandler]):
        self._service = service
        self._handlers = handlers

    def _response(self, status: int, body: str) -> web.Response:
        return web.Response(status=status, body=body.encode(), content_type="text/xml")

    def error(self, shape: str, message: str) -> web.Response:
        code, status, fault = _error_code(self._service, shape)
        ns = _model(self._service)["metadata"]["xmlNamespace"]
        return self._response(status, (
            f'<ErrorResponse xmlns="{ns}"><Error><Type>{fault}</Type><Code>{escape(code)}'
            f"</Code><Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}"
            "</RequestId></ErrorResponse>"))

    async def handle(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        form = dict(request.query)
        if request.method == "POST":
            form |= {k: str(v) for k, v in (await request.post()).items()}
        model = _model(self._service)
        action = form.get("Action", "")
        operation = model["operations"].get(action)
        handler = self._handlers.get(action)
        if operation is None or handler is None:
            return self._validation(f"Could not find operation {action}")
        shapes = model["shapes"]
        input_shape = operation.get("input", {}).get("shape")
        params = _params(form, shapes, input_shape)
        for required in shapes[input_shape].get("required", []) if input_shape else []:
            if required not in params:
                return self._validation(
                    f"1 validation error detected: Value null at '{required[:1].lower()}"
                    f"{required[1:]}' failed to satisfy constraint: Member must not be null")
        try:
            result = handler(scope, params)
        except QueryError as e:
            return self.error(e.shape, e.message)
        ns = model["metadata"]["xmlNamespace"]
        output = operation.get("output")
        body = ""
        if output is not None:
            wrapper = output.get("resultWrapper", f"{action}Result")
            body = f"<{wrapper}>{_xml(shapes, output['shape'], result or {})}</{wrapper}>"
        return self._response(200, (
            f'<{action}Response xmlns="{ns}">{body}<ResponseMetadata><RequestId>'
            f"{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>"))

    def _validation(self, message: str) -> web.Response:
        ns = _model(self._service)["metadata"]["xmlNamespace"]
        return self._response(400, (
            f'<ErrorResponse xmlns="{ns}"><Error><Type>Sender</Type><Code>ValidationError'
            f"</Code><Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}"
            "</RequestId></ErrorResponse>"))
