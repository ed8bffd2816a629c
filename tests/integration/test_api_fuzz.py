"""Every operation local core implements, sent well- and ill-typed requests generated from
botocore's own shapes, over HTTP to a real local core: no answer is a 5xx, nothing is logged as
a traceback, and the core keeps serving."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlparse

import pytest
from botocore.loaders import Loader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetsim.localcore.features import FEATURES
from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core

AUTH = ("AWS4-HMAC-SHA256 Credential=KEY/20240101/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=00")


def implemented() -> list[tuple[str, str]]:
    """(service, operation) of every handler a feature declares."""
    out = []
    for feature in FEATURES:
        operations = getattr(feature, "operations", None)
        if operations is None:
            operations = getattr(getattr(feature, "api", None), "operations", None)
        if operations is not None:
            out += list(operations.handlers)
    return sorted(out)


OPERATIONS = implemented()
MODELS = {name: Loader().load_service_model(name, "service-2")
          for name in sorted({service for service, _ in OPERATIONS})}


def signing_name(service: str) -> str:
    metadata = MODELS[service]["metadata"]
    return str(metadata.get("signingName", metadata["endpointPrefix"]))
# A few examples per operation keep `make test` short; raise it for a longer hunt.
EXAMPLES = int(os.environ.get("FLEETSIM_API_FUZZ_EXAMPLES", "6"))

_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)


def _string(shape: dict[str, Any]) -> st.SearchStrategy[str]:
    if "enum" in shape:
        return st.sampled_from(shape["enum"])
    lo, hi = shape.get("min", 0), min(shape.get("max", 40), 40)
    plain = st.text(min_size=lo, max_size=max(lo, hi))
    if "pattern" in shape:
        try:
            re.compile(shape["pattern"])
        except re.error:  # a Java-only construct
            return plain
        matching = st.from_regex(shape["pattern"], fullmatch=True).filter(
            lambda s: lo <= len(s) <= max(lo, hi))
        return matching | plain
    return plain


def value_of(shapes: dict[str, Any], name: str, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of shape `name`: mostly well-typed, sometimes of any JSON type."""
    shape = shapes[name]
    kind = shape["type"]
    if kind == "string":
        good: st.SearchStrategy[Any] = _string(shape)
    elif kind in ("integer", "long"):
        good = st.integers(shape.get("min", -(2**40)), shape.get("max", 2**40)) | st.integers()
    elif kind == "boolean":
        good = st.booleans()
    elif kind in ("float", "double"):
        good = st.floats(allow_nan=False, allow_infinity=False)
    elif kind == "timestamp":
        good = st.integers(0, 2**31)
    elif kind == "blob":
        good = st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
    elif depth > 4:
        good = st.nothing()
    elif kind == "list":
        good = st.lists(value_of(shapes, shape["member"]["shape"], depth + 1), max_size=3)
    elif kind == "map":
        good = st.dictionaries(_string(shapes[shape["key"]["shape"]]),
                               value_of(shapes, shape["value"]["shape"], depth + 1),
                               max_size=3)
    else:
        good = structure_of(shapes, shape, depth + 1)
    return st.one_of(good, good, good, _junk)


def structure_of(shapes: dict[str, Any], shape: dict[str, Any],
                 depth: int) -> st.SearchStrategy[dict[str, Any]]:
    members = shape.get("members", {})
    required = set(shape.get("required", ()))
    strategies = {m: value_of(shapes, spec["shape"], depth) for m, spec in members.items()}
    complete = st.fixed_dictionaries({m: s for m, s in strategies.items() if m in required},
                                     optional={m: s for m, s in strategies.items()
                                               if m not in required})
    partial = st.fixed_dictionaries({}, optional=strategies)  # required members may be missing
    return complete | partial


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def build_request(service: str, operation: str, params: dict[str, Any]
                  ) -> tuple[str, str, dict[str, str], bytes]:
    """(method, path?query, headers, body) of `params` placed as the operation's model says
    (its service's protocol: rest-json, json or query)."""
    model = MODELS[service]
    metadata = model["metadata"]
    auth = AUTH.format(service=signing_name(service))
    if metadata["protocol"] == "json":
        return "POST", "/", {
            "Authorization": auth,
            "X-Amz-Target": f"{metadata['targetPrefix']}.{operation}",
            "Content-Type": f"application/x-amz-json-{metadata['jsonVersion']}"}, \
            json.dumps(params).encode()
    if metadata["protocol"] == "query":  # top-level members only: nested ones become junk text
        form = [("Action", operation), ("Version", metadata["apiVersion"])]
        form += [(member, _text(value)) for member, value in params.items()]
        return "POST", "/", {"Authorization": auth,
                             "Content-Type": "application/x-www-form-urlencoded"}, \
            urlencode(form).encode()
    op = model["operations"][operation]
    shapes = model["shapes"]
    members = shapes[op["input"]["shape"]].get("members", {}) if "input" in op else {}
    payload = shapes[op["input"]["shape"]].get("payload") if "input" in op else None
    path, _, fixed_query = op["http"]["requestUri"].partition("?")
    query: list[tuple[str, str]] = [tuple(q.split("=", 1)) if "=" in q else (q, "")
                                    for q in fixed_query.split("&") if q]
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    body: dict[str, Any] = {}
    raw: bytes | None = None
    for member, value in params.items():
        spec = members[member]
        location = spec.get("location")
        wire = spec.get("locationName", member)
        if location == "uri":
            greedy = "{" + wire + "+}" in path
            path = path.replace("{" + wire + "+}" if greedy else "{" + wire + "}",
                                quote(_text(value), safe="/" if greedy else ""))
        elif location == "querystring":
            for item in value if isinstance(value, list) else [value]:
                query.append((wire, _text(item)))
        elif location == "header":
            text = _text(value)
            if text.isascii() and text.isprintable():
                headers[wire] = text
        elif member == payload:
            raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        else:
            body[member] = value
    for label in ("{", "}"):  # labels left unfilled: the route does not match (404)
        path = path.replace(label, "")
    if raw is None:
        raw = json.dumps(body).encode() if body or op["http"]["method"] in ("POST", "PUT",
                                                                            "PATCH") else b""
    target = path + ("?" + urlencode(query) if query else "")
    return op["http"]["method"], target, headers, raw


def send(core: RunningLocalCore, method: str, target: str, headers: dict[str, str],
         body: bytes) -> tuple[int, bytes]:
    url = urlparse(core.api_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request(method, target, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("fuzz") / "core")
    yield running
    running.stop()


def _log(core: RunningLocalCore) -> Path:
    return core.state_dir.parent / f"{core.state_dir.name}.log"


def test_every_implemented_operation_is_fuzzed() -> None:
    assert len(OPERATIONS) >= 60  # the registry, certificates, policies, events, shadows...


@pytest.mark.parametrize(("service", "operation"), OPERATIONS,
                         ids=[f"{s}:{o}" for s, o in OPERATIONS])
def test_generated_requests_never_fail_the_server(core: RunningLocalCore, service: str,
                                                  operation: str) -> None:
    model = MODELS[service]
    op = model["operations"][operation]
    shape = model["shapes"][op["input"]["shape"]] if "input" in op else {"members": {}}
    requests = structure_of(model["shapes"], shape, 0)
    log_start = _log(core).stat().st_size

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests)
    def check(params: dict[str, Any]) -> None:
        method, target, headers, body = build_request(service, operation, params)
        status, answer = send(core, method, target, headers, body)
        assert status < 500, (method, target, body[:300], answer[:300])

    check()
    status, _ = send(core, "GET", "/things?maxResults=1",
                     {"Authorization": AUTH.format(service="iot")}, b"")
    assert status == 200
    with open(_log(core), "rb") as log:
        log.seek(log_start)
        assert b"Traceback" not in log.read()
