"""The rest-json protocol, driven by botocore's own service model.

Routing (method + requestUri with `{label}` / `{label+}`), request deserialisation (uri,
querystring, header and body members, payload members), top-level input validation with
AWS's validation messages, output serialisation (header members, payload, JSON body) and
error rendering (status from the error shape, `x-amzn-ErrorType`, `{"message": ...}`) are all
compiled once from the model, so a request costs one regex match and one handler call.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from fleetsim.localcore.api.body import MAX_BODY_BYTES, read_capped
from fleetsim.localcore.api.modelservice import ModelService, Params, scalar
from fleetsim.localcore.api.operations import Bound
from fleetsim.localcore.api.validation import validation_error_code
from fleetsim.localcore.errors import AwsError

_LABEL = re.compile(r"(\{[^}]+\})")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, bytes | bytearray):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=_json_default).encode()


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; SerializationException if it is not."""
    try:
        return json.loads(raw)
    except ValueError as e:
        raise AwsError("SerializationException", f"Could not parse the request body: {e}"
                       ) from e
    except RecursionError as e:
        raise AwsError("SerializationException", "Could not parse the request body: "
                       "JSON nested too deeply") from e


@dataclass(slots=True)
class _Route:
    name: str
    regex: re.Pattern[str]
    labels: dict[str, tuple[str, str]]          # regex group -> (member, kind)
    query: list[tuple[str, str, str, bool]]     # (query name, member, kind, is list)
    headers: list[tuple[str, str, str]]         # (header name, member, kind)
    body_members: frozenset[str]
    payload: tuple[str, str] | None             # (member, shape type)
    input_shape: str | None
    error_code: str
    out_headers: list[tuple[str, str]]          # (member, header name)
    out_payload: tuple[str, str] | None
    out_status_member: str | None
    status: int
    handler: Bound | None = None
    literal_weight: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class RestJsonService(ModelService):
    """One rest-json service (iot, iot-data, iot-jobs-data, ...), served from its model."""

    internal_failure = AwsError("InternalFailureException", "An unexpected error has occurred.")

    def __init__(self, service: str, handlers: dict[str, Bound], account_id: str,
                 region_of: Callable[[web.Request], str],
                 model: dict[str, Any] | None = None, max_body: int = MAX_BODY_BYTES):
        super().__init__(service, handlers, account_id, region_of, model)
        self.max_body = max_body
        self._routes: dict[str, list[_Route]] = {}
        for name, op in self.model["operations"].items():
            route = self._compile(name, op)
            route.handler = handlers.get(name)
            self._routes.setdefault(op["http"]["method"], []).append(route)
        for routes in self._routes.values():
            routes.sort(key=lambda r: -r.literal_weight)

    # --- compilation ----------------------------------------------------------------------

    def _compile(self, name: str, op: dict[str, Any]) -> _Route:
        path = op["http"]["requestUri"].partition("?")[0]
        input_shape = self.shapes[op["input"]["shape"]] if "input" in op else {"members": {}}
        members: dict[str, Any] = input_shape.get("members", {})
        by_uri_name = {m.get("locationName", n): n for n, m in members.items()
                       if m.get("location") == "uri"}
        pattern, weight = "", 0
        labels: dict[str, tuple[str, str]] = {}
        for part in _LABEL.split(path):
            if part.startswith("{"):
                label = part[1:-1]
                greedy = label.endswith("+")
                label = label.rstrip("+")
                group = f"g{len(labels)}"
                member = by_uri_name.get(label, label)
                spec = members.get(member)
                kind = self.shapes[spec["shape"]]["type"] if spec else "string"
                labels[group] = (member, kind)
                pattern += f"(?P<{group}>{'.+' if greedy else '[^/]+'})"
            elif part:
                pattern += re.escape(part)
                weight += len(part)
        query, headers, body = [], [], set()
        for member, spec in members.items():
            shape = self.shapes[spec["shape"]]
            kind = shape["type"]
            location = spec.get("location")
            if location == "querystring":
                is_list = kind == "list"
                if is_list:
                    kind = self.shapes[shape["member"]["shape"]]["type"]
                query.append((spec.get("locationName", member), member, kind, is_list))
            elif location == "header":
                headers.append((spec.get("locationName", member), member, kind))
            elif location not in ("uri", "headers"):
                body.add(member)
        payload = None
        if "payload" in input_shape:
            pname = input_shape["payload"]
            payload = (pname, self.shapes[members[pname]["shape"]]["type"])
            body.discard(pname)
        out_headers, out_payload, out_status = [], None, None
        if "output" in op:
            out_shape = self.shapes[op["output"]["shape"]]
            for member, spec in out_shape.get("members", {}).items():
                if spec.get("location") == "header":
                    out_headers.append((member, spec.get("locationName", member)))
                elif spec.get("location") == "statusCode":
                    out_status = member
            if "payload" in out_shape:
                pname = out_shape["payload"]
                out_payload = (pname, self.shapes[out_shape["members"][pname]["shape"]]["type"])
        return _Route(name, re.compile(pattern), labels, query, headers, frozenset(body),
                      payload, op.get("input", {}).get("shape"), validation_error_code(op),
                      out_headers,
                      out_payload, out_status, op["http"].get("responseCode", 200),
                      literal_weight=weight)

    # --- request path ---------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in self._routes.get(method, ()):
            m = route.regex.fullmatch(path)
            if m is not None:
                return route, {member: scalar(unquote(v), kind)
                               for g, v in m.groupdict().items()
                               for member, kind in (route.labels[g],)}
        return None

    async def handle(self, request: web.Request) -> web.Response:
        raw_path, _, raw_query = request.raw_path.partition("?")
        found = self._match(request.method, raw_path)
        if found is None:
            return self.error_response(AwsError(
                "UnknownOperationException",
                f"local core serves no {self.service} operation at {request.method} {raw_path}",
                status=404))
        route, params = found
        return await self.answer(request, route.name, route.handler,
                                 lambda: self._read(route, request, raw_query, params),
                                 lambda result: self._render(route, result))

    async def _read(self, route: _Route, request: web.Request, raw_query: str,
                    params: Params) -> Params:
        self._read_query(route, raw_query, params)
        for header, member, kind in route.headers:
            value = request.headers.get(header)
            if value is not None:
                params[member] = scalar(value, kind)
        if route.body_members or route.payload:
            await self._read_body(route, request, params)
        self.validate(route.input_shape, route.error_code, params)
        return params

    def _read_query(self, route: _Route, raw_query: str, params: dict[str, Any]) -> None:
        if not raw_query or not route.query:
            return
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        for qname, member, kind, is_list in route.query:
            values = [v for k, v in pairs if k == qname]
            if not values:
                continue
            if is_list:
                params[member] = [scalar(v, kind) for v in values]
            else:
                params[member] = scalar(values[0], kind)

    async def _read_body(self, route: _Route, request: web.Request,
                         params: dict[str, Any]) -> None:
        raw = await read_capped(request, self.max_body)
        if route.payload is not None:
            member, kind = route.payload
            if kind == "structure":
                if raw:
                    params[member] = parse_json(raw)
            elif raw:
                params[member] = raw if kind == "blob" else raw.decode()
            return
        if not raw:
            return
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise AwsError("SerializationException", "The request body must be a JSON object")
        for key, value in body.items():
            if key in route.body_members and value is not None:
                params[key] = value

    def _render(self, route: _Route, result: dict[str, Any] | None) -> web.Response:
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        status = route.status
        if not result:
            return web.Response(status=status, body=b"{}", headers=headers,
                                content_type="application/json")
        if route.out_headers or route.out_status_member:
            result = dict(result)
            for member, header in route.out_headers:
                value = result.pop(member, None)
                if value is not None:
                    headers[header] = str(value)
            if route.out_status_member:
                status = int(result.pop(route.out_status_member, status))
        if route.out_payload is not None:
            member, kind = route.out_payload
            value = result.get(member)
            if kind == "structure":
                body = dumps(value or {})
            elif value is None:
                body = b""
            else:
                body = value if isinstance(value, bytes) else str(value).encode()
            return web.Response(status=status, body=body, headers=headers,
                                content_type="application/json")
        return web.Response(status=status, body=dumps(result), headers=headers,
                            content_type="application/json")

    def error_body(self, error: AwsError, status: int) -> web.Response:
        return web.Response(status=status, body=dumps({"message": error.message,
                                                       **error.fields}),
                            content_type="application/json",
                            headers={"x-amzn-ErrorType": error.code,
                                     "x-amzn-RequestId": str(uuid.uuid4())})

