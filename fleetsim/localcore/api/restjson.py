"""The rest-json protocol, driven by botocore's own service model.

Routing (method + requestUri with `{label}` / `{label+}`), request deserialisation (uri,
querystring, header and body members, payload members), top-level input validation with
AWS's validation messages, output serialisation (header members, payload, JSON body) and
error rendering (status from the error shape, `x-amzn-ErrorType`, `{"message": ...}`) are all
compiled once from the model, so a request costs one regex match and one handler call.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web
from botocore.loaders import Loader

from fleetsim.localcore.api.body import read_capped
from fleetsim.localcore.api.operations import Bound, Call
from fleetsim.localcore.api.validation import (
    ShapeValidator,
    validation_error_code,
    validation_message,
)
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.scope import Scope

log = logging.getLogger(__name__)

_LABEL = re.compile(r"(\{[^}]+\})")
_INT_TYPES = {"integer", "long"}
_FLOAT_TYPES = {"float", "double"}


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


def error_statuses(shapes: dict[str, Any]) -> dict[str, int]:
    """The HTTP status of each error shape of a service model (400 unless it says)."""
    return {name: shape.get("error", {}).get("httpStatusCode", 400)
            for name, shape in shapes.items() if shape.get("exception")}


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
    is_async: bool = False
    literal_weight: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class RestJsonService:
    """One rest-json service (iot, iot-data, iot-jobs-data, ...), served from its model."""

    def __init__(self, service: str, handlers: dict[str, Bound], account_id: str,
                 region_of: Callable[[web.Request], str],
                 model: dict[str, Any] | None = None):
        self.service = service
        self.account_id = account_id
        self.region_of = region_of
        model = model or Loader().load_service_model(service, "service-2")
        self._shapes: dict[str, Any] = model["shapes"]
        self._validator = ShapeValidator(self._shapes)
        self._error_status = error_statuses(self._shapes)
        self._routes: dict[str, list[_Route]] = {}
        for name, op in model["operations"].items():
            route = self._compile(name, op)
            bound = handlers.get(name)
            if bound is not None:
                route.handler = bound
                route.is_async = inspect.iscoroutinefunction(bound.handler)
            self._routes.setdefault(op["http"]["method"], []).append(route)
        unknown = set(handlers) - set(model["operations"])
        if unknown:
            raise ValueError(f"handlers for operations {service} does not have: {unknown}")
        for routes in self._routes.values():
            routes.sort(key=lambda r: -r.literal_weight)

    # --- compilation ----------------------------------------------------------------------

    def _compile(self, name: str, op: dict[str, Any]) -> _Route:
        path = op["http"]["requestUri"].partition("?")[0]
        input_shape = self._shapes[op["input"]["shape"]] if "input" in op else {"members": {}}
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
                kind = self._shapes[spec["shape"]]["type"] if spec else "string"
                labels[group] = (member, kind)
                pattern += f"(?P<{group}>{'.+' if greedy else '[^/]+'})"
            elif part:
                pattern += re.escape(part)
                weight += len(part)
        query, headers, body = [], [], set()
        for member, spec in members.items():
            shape = self._shapes[spec["shape"]]
            kind = shape["type"]
            location = spec.get("location")
            if location == "querystring":
                is_list = kind == "list"
                if is_list:
                    kind = self._shapes[shape["member"]["shape"]]["type"]
                query.append((spec.get("locationName", member), member, kind, is_list))
            elif location == "header":
                headers.append((spec.get("locationName", member), member, kind))
            elif location not in ("uri", "headers"):
                body.add(member)
        payload = None
        if "payload" in input_shape:
            pname = input_shape["payload"]
            payload = (pname, self._shapes[members[pname]["shape"]]["type"])
            body.discard(pname)
        out_headers, out_payload, out_status = [], None, None
        if "output" in op:
            out_shape = self._shapes[op["output"]["shape"]]
            for member, spec in out_shape.get("members", {}).items():
                if spec.get("location") == "header":
                    out_headers.append((member, spec.get("locationName", member)))
                elif spec.get("location") == "statusCode":
                    out_status = member
            if "payload" in out_shape:
                pname = out_shape["payload"]
                out_payload = (pname, self._shapes[out_shape["members"][pname]["shape"]]["type"])
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
                return route, {member: self._convert(unquote(v), kind)
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
        try:
            if route.handler is None:
                raise AwsError("NotImplementedException",
                               f"local core does not implement {self.service}:{route.name}",
                               status=501)
            self._read_query(route, raw_query, params)
            for header, member, kind in route.headers:
                value = request.headers.get(header)
                if value is not None:
                    params[member] = self._convert(value, kind)
            if route.body_members or route.payload:
                await self._read_body(route, request, params)
            self._validate(route, params)
            call = Call(route.handler.service, Scope(self.account_id, self.region_of(request)))
            result = route.handler.handler(call, params)
            if route.is_async:
                result = await result
            return self._render(route, result)
        except AwsError as e:
            return self.error_response(e)
        except Exception:
            log.exception("%s:%s failed", self.service, route.name)
            return self.error_response(AwsError("InternalFailureException",
                                                "An unexpected error has occurred."))

    def _read_query(self, route: _Route, raw_query: str, params: dict[str, Any]) -> None:
        if not raw_query or not route.query:
            return
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        for qname, member, kind, is_list in route.query:
            values = [v for k, v in pairs if k == qname]
            if not values:
                continue
            if is_list:
                params[member] = [self._convert(v, kind) for v in values]
            else:
                params[member] = self._convert(values[0], kind)

    @staticmethod
    def _convert(value: str, kind: str) -> Any:
        """A query string or header value as its member's type. A value that is not of that
        type is kept as the string it is, for validation to name it."""
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

    async def _read_body(self, route: _Route, request: web.Request,
                         params: dict[str, Any]) -> None:
        raw = await read_capped(request)
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

    def _validate(self, route: _Route, params: dict[str, Any]) -> None:
        if route.input_shape is None:
            return
        problems = self._validator.members(route.input_shape, params)
        if problems:
            raise AwsError(route.error_code, validation_message(problems))

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

    def error_response(self, error: AwsError) -> web.Response:
        status = error.status or self._error_status.get(error.code, 400)
        body = {"message": error.message, **error.fields}
        response = web.Response(status=status, body=dumps(body),
                                content_type="application/json",
                                headers={"x-amzn-ErrorType": error.code,
                                         "x-amzn-RequestId": str(uuid.uuid4())})
        if status == 413:
            response.force_close()  # the rest of the body is not read
        return response

