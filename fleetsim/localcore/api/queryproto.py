"""The AWS query protocol (IAM), driven by botocore's service model: form-encoded requests in
(`Action=CreateRole&RoleName=...`, lists as `Name.member.N`), XML out
(`<CreateRoleResponse><CreateRoleResult>...</CreateRoleResult><ResponseMetadata>...`), errors
as `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>` with the
code and HTTP status the model gives each error shape.

Handlers are declared with `Operations` (`@operations.iam("GetRole")`) like every other served
service's and raise `AwsError` with the error shape's name (`NoSuchEntityException`); the
answer carries the code that shape declares (`NoSuchEntity`). Input is checked against the
operation's input shape before the handler runs and answered as IAM answers it: code
`ValidationError`, "1 validation error detected: Value '...' at 'roleName' failed to satisfy
constraint: ...", members named in lower camel case."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

from fleetsim.localcore.api.body import read_capped
from fleetsim.localcore.api.modelservice import ModelService, Params, scalar
from fleetsim.localcore.api.operations import Bound
from fleetsim.localcore.errors import AwsError

VALIDATION_ERROR = "ValidationError"


def _lower_camel(member: str) -> str:
    """A member as the query protocol's validation messages name it: RoleName -> roleName."""
    return member[:1].lower() + member[1:]


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


def _params(form: dict[str, str], shapes: dict[str, Any], shape_name: str | None) -> Params:
    """Top-level members of the input shape; lists (`X.member.N`) become lists, in order."""
    if shape_name is None:
        return {}
    out: Params = {}
    for name, member in shapes[shape_name]["members"].items():
        kind = shapes[member["shape"]]["type"]
        if kind == "list":
            prefix = f"{name}.member."
            items = sorted((int(k[len(prefix):]), v) for k, v in form.items()
                           if k.startswith(prefix) and k[len(prefix):].isdigit())
            if items:
                out[name] = [v for _, v in items]
        elif name in form:
            out[name] = scalar(form[name], kind)
    return out


class QueryService(ModelService):
    """One query-protocol service (iam), served from its model."""

    def __init__(self, service: str, handlers: dict[str, Bound], account_id: str,
                 region_of: Callable[[web.Request], str],
                 model: dict[str, Any] | None = None):
        super().__init__(service, handlers, account_id, region_of, model, _lower_camel)
        self._handlers = handlers
        self._ns = self.model["metadata"]["xmlNamespace"]

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if request.method == "POST":
            try:
                body = await read_capped(request)
            except AwsError as e:
                return self.error_response(e)
            form |= dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        action = form.get("Action", "")
        operation = self.model["operations"].get(action)
        if operation is None:
            return self.error_response(AwsError(VALIDATION_ERROR,
                                                f"Could not find operation {action}"))
        input_shape = operation.get("input", {}).get("shape")

        async def read() -> Params:
            params = _params(form, self.shapes, input_shape)
            self.validate(input_shape, VALIDATION_ERROR, params)
            return params

        return await self.answer(request, action, self._handlers.get(action), read,
                                 lambda result: self._render(action, operation, result))

    def _response(self, status: int, body: str) -> web.Response:
        return web.Response(status=status, body=body.encode(), content_type="text/xml")

    def _render(self, action: str, operation: dict[str, Any], result: Params | None
                ) -> web.Response:
        output = operation.get("output")
        body = ""
        if output is not None:
            wrapper = output.get("resultWrapper", f"{action}Result")
            body = f"<{wrapper}>{_xml(self.shapes, output['shape'], result or {})}</{wrapper}>"
        return self._response(200, (
            f'<{action}Response xmlns="{self._ns}">{body}<ResponseMetadata><RequestId>'
            f"{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>"))

    def error_body(self, error: AwsError, status: int) -> web.Response:
        """The code the error shape declares (`NoSuchEntityException` is `NoSuchEntity`), and
        whether the sender or the service is at fault."""
        declared = self.shapes.get(error.code, {}).get("error", {})
        code = declared.get("code", error.code)
        fault = "Sender" if declared.get("senderFault", status < 500) else "Receiver"
        return self._response(status, (
            f'<ErrorResponse xmlns="{self._ns}"><Error><Type>{fault}</Type><Code>{escape(code)}'
            f"</Code><Message>{escape(error.message)}</Message></Error><RequestId>"
            f"{uuid.uuid4()}</RequestId></ErrorResponse>"))
