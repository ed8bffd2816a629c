"""AWS IoT Device Shadow semantics as pure functions: no I/O, no clock, no storage.

Everything here follows the AWS IoT Developer Guide; the page a rule comes from is named where
the rule is not obvious. The pages (titles as AWS gives them):

- "Device Shadow service documents": request/response shapes, delta, versioning, clientToken,
  empty properties, arrays.
- "Interacting with shadows": UPDATE creates, `null` removes a field, optimistic locking (409),
  delete keeps the version (48 hours), the `/update/documents` example.
- "Device Shadow MQTT topics": what `/update/delta` contains.
- "Device Shadow error messages": every error code and message text used below.
- "Diagnosing problems with shadows": 8 KB limit, metadata not counted, content outside
  `desired`/`reported` ignored.
- "Using shadows in devices" / the "Simulating Device Shadow service communications" walk-through:
  metadata of arrays (one `{"timestamp"}` per element), the message examples the tests replay.
- AWS IoT Core quotas ("Device Shadow limits"): depth of `desired`/`reported`.

`apply_update` raises `ShadowError` (and nothing else) for any input.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any

Json = Any  # a value json.loads can return

# "Diagnosing problems with shadows" / quotas: 8 KB of desired + reported; metadata not counted.
MAX_STATE_BYTES = 8192
# "Device Shadow error messages": "JSON contains too many levels of nesting; maximum is 6".
MAX_DEPTH = 6
# "Device Shadow service documents" (Client tokens): no longer than 64 bytes.
MAX_CLIENT_TOKEN_BYTES = 64
# "Interacting with shadows" (DELETE): a shadow re-created within 48 hours of its deletion
# continues the deleted one's version numbers; after that it starts again from 0.
VERSION_RETENTION_SECONDS = 48 * 3600

SECTIONS = ("desired", "reported")

# The REST (`iot-data`) error shape for each HTTP status, from botocore's iot-data model.
AWS_ERROR_CODES = {
    400: "InvalidRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "ResourceNotFoundException",
    405: "MethodNotAllowedException",
    409: "ConflictException",
    413: "RequestEntityTooLargeException",
    415: "UnsupportedDocumentEncodingException",
    429: "ThrottlingException",
    500: "InternalFailureException",
    503: "ServiceUnavailableException",
}

# Message texts exactly as "Device Shadow error messages" lists them.
INVALID_JSON = "Invalid JSON"
MISSING_STATE = "Missing required node: state"
STATE_NOT_OBJECT = "State node must be an object"
DESIRED_NOT_OBJECT = "Desired node must be an object"
REPORTED_NOT_OBJECT = "Reported node must be an object"
INVALID_VERSION = "Invalid version"
INVALID_CLIENT_TOKEN = "Invalid clientToken"
TOO_DEEP = f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}"
INVALID_NODE = "State contains an invalid node"
VERSION_CONFLICT = "Version conflict"
TOO_LARGE = "The payload exceeds the maximum size allowed"
# (sic: "documented" is AWS's wording)
UNSUPPORTED_ENCODING = "Unsupported documented encoding; supported encoding is UTF-8"
THING_NOT_FOUND = "Thing not found"
# The page gives no text for 429; this one is ours.
TOO_MANY_REQUESTS = "Too Many Requests"


class ShadowError(Exception):
    """A rejected shadow request: the HTTP-style `code`, AWS's `message`, and the request's
    `client_token` when it had a valid one (echoed in the error document)."""

    def __init__(self, code: int, message: str, client_token: str | None = None):
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.client_token = client_token

    @property
    def aws_code(self) -> str:
        """The `iot-data` REST error code (e.g. ConflictException) for `code`."""
        return AWS_ERROR_CODES.get(self.code, "InternalFailureException")

    def with_token(self, client_token: str | None) -> ShadowError:
        return ShadowError(self.code, self.message, client_token)

    def payload(self, timestamp: int) -> dict[str, Json]:
        """The error response document ("Device Shadow service documents")."""
        doc: dict[str, Json] = {"code": self.code, "message": self.message,
                                "timestamp": timestamp}
        if self.client_token is not None:
            doc["clientToken"] = self.client_token
        return doc

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ShadowError) and self.code == other.code
                and self.message == other.message and self.client_token == other.client_token)

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.client_token))


def no_shadow(shadow_label: str) -> ShadowError:
    """404 for a missing shadow. `shadow_label` is the shadow name, or the thing name for the
    classic shadow (the "Simulating ..." page shows `No shadow exists with name: 'simShadow1'`)."""
    return ShadowError(404, f"No shadow exists with name: '{shadow_label}'")


def throttled(client_token: str | None = None) -> ShadowError:
    """429: more than 10 in-flight requests on one connection ("Device Shadow error messages")."""
    return ShadowError(429, TOO_MANY_REQUESTS, client_token)


# ---------------------------------------------------------------------------------------------
# The stored shadow


@dataclass(frozen=True)
class ShadowDocument:
    """A stored shadow: `desired`/`reported` (None when the section is absent), their metadata
    (same structure, each leaf `{"timestamp": N}`), the version and the time of the last update."""

    desired: dict[str, Json] | None
    reported: dict[str, Json] | None
    metadata_desired: dict[str, Json] | None
    metadata_reported: dict[str, Json] | None
    version: int
    timestamp: int

    def state(self) -> dict[str, Json]:
        """`desired` and `reported`, each only when present."""
        out: dict[str, Json] = {}
        if self.desired is not None:
            out["desired"] = copy.deepcopy(self.desired)
        if self.reported is not None:
            out["reported"] = copy.deepcopy(self.reported)
        return out

    def metadata(self) -> dict[str, Json]:
        out: dict[str, Json] = {}
        if self.metadata_desired is not None:
            out["desired"] = copy.deepcopy(self.metadata_desired)
        if self.metadata_reported is not None:
            out["reported"] = copy.deepcopy(self.metadata_reported)
        return out

    def delta(self) -> dict[str, Json]:
        """Desired fields that reported lacks or holds differently ("Delta state")."""
        return compute_delta(self.desired or {}, self.reported or {})

    def delta_metadata(self) -> dict[str, Json]:
        return delta_metadata(self.delta(), self.metadata_desired or {})

    def snapshot(self) -> dict[str, Json]:
        """`previous`/`current` of an `/update/documents` message: state (no delta), metadata,
        version."""
        return {"state": self.state(), "metadata": self.metadata(), "version": self.version}

    def to_storage(self) -> str:
        """JSON of state and metadata (version and timestamp are columns of their own)."""
        return json.dumps({"state": self.state(), "metadata": self.metadata()},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_storage(cls, text: str, version: int, timestamp: int) -> ShadowDocument:
        data = json.loads(text)
        state, meta = data.get("state", {}), data.get("metadata", {})
        return cls(state.get("desired"), state.get("reported"), meta.get("desired"),
                   meta.get("reported"), version, timestamp)


def get_payload(doc: ShadowDocument, now: int, client_token: str | None = None
                ) -> dict[str, Json]:
    """The `/get/accepted` document (and GetThingShadow's body): state with `delta` when desired
    and reported differ, metadata (with `delta` metadata likewise), version, timestamp."""
    state = doc.state()
    metadata = doc.metadata()
    delta = doc.delta()
    if delta:
        state["delta"] = delta
        metadata["delta"] = delta_metadata(delta, doc.metadata_desired or {})
    out: dict[str, Json] = {"state": state, "metadata": metadata, "version": doc.version,
                            "timestamp": now}
    if client_token is not None:
        out["clientToken"] = client_token
    return out


def delete_payload(version: int, now: int, client_token: str | None = None) -> dict[str, Json]:
    """The `/delete/accepted` document ("Interacting with shadows": `{"version", "timestamp"}`)."""
    out: dict[str, Json] = {"version": version, "timestamp": now}
    if client_token is not None:
        out["clientToken"] = client_token
    return out


# ---------------------------------------------------------------------------------------------
# JSON helpers


def json_equal(a: Json, b: Json) -> bool:
    """JSON equality: booleans are not numbers (Python says True == 1), 1 == 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def metadata_of(value: Json, timestamp: int) -> Json:
    """Metadata mirroring `value`: objects key by key, arrays element by element (the
    "Simulating ..." page shows `"ColorRGB": [{"timestamp": N}, ...]`), any other value
    (`null` included) `{"timestamp": N}`."""
    if isinstance(value, dict):
        return {k: metadata_of(v, timestamp) for k, v in value.items()}
    if isinstance(value, list):
        return [metadata_of(v, timestamp) for v in value]
    return {"timestamp": timestamp}


def depth(value: Json, limit: int = MAX_DEPTH + 1) -> int:
    """Levels of nesting below a `desired`/`reported` node, counted up to `limit`. The quota
    page's example (`"desired": {"one": {"two": ... {"five": {}}}}` is 5 levels) counts each key
    level, so an empty object adds none. Arrays count as a level too (our reading; the page is
    silent)."""
    if limit <= 0 or not isinstance(value, dict | list) or not value:
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max(depth(v, limit - 1) for v in children)


def _array_has_null(value: Json, in_array: bool = False) -> bool:
    # "Device Shadow service documents" (Arrays): arrays can't have null values.
    if value is None:
        return in_array
    if isinstance(value, dict):
        return any(_array_has_null(v, False) for v in value.values())
    if isinstance(value, list):
        return any(_array_has_null(v, True) for v in value)
    return False


def state_size(desired: dict[str, Json] | None, reported: dict[str, Json] | None) -> int:
    """Bytes counted against the 8 KB limit: compact UTF-8 JSON of the stored desired and
    reported sections (metadata excluded, "Diagnosing problems with shadows")."""
    state: dict[str, Json] = {}
    if desired is not None:
        state["desired"] = desired
    if reported is not None:
        state["reported"] = reported
    return len(json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode())


def compute_delta(desired: dict[str, Json], reported: dict[str, Json]) -> dict[str, Json]:
    """"Delta state": every desired field absent from reported or different there; nested
    objects recurse (the delta keeps the path to the root); arrays and other values compare
    whole. Reported-only fields never appear."""
    out: dict[str, Json] = {}
    for key, want in desired.items():
        if key not in reported:
            out[key] = copy.deepcopy(want)
            continue
        have = reported[key]
        if isinstance(want, dict) and isinstance(have, dict):
            sub = compute_delta(want, have)
            if sub:
                out[key] = sub
        elif not json_equal(want, have):
            out[key] = copy.deepcopy(want)
    return out


def delta_metadata(delta: dict[str, Json], desired_meta: dict[str, Json]) -> dict[str, Json]:
    """Metadata of the delta fields, equal to the desired metadata ("Delta state")."""
    out: dict[str, Json] = {}
    for key, value in delta.items():
        meta = desired_meta.get(key)
        if isinstance(value, dict) and isinstance(meta, dict) and "timestamp" not in meta:
            out[key] = delta_metadata(value, meta)
        else:
            out[key] = copy.deepcopy(meta)
    return out


def _merge(target: dict[str, Json], meta: dict[str, Json], patch: dict[str, Json],
           timestamp: int) -> None:
    """Apply `patch` to `target` in place: `null` removes a field, objects merge key by key,
    arrays and other values replace whole ("Interacting with shadows"; "Arrays")."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
            meta.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
                meta[key] = {}
            elif not isinstance(meta.get(key), dict) or "timestamp" in meta[key]:
                meta[key] = {}
            _merge(target[key], meta[key], value, timestamp)
            if not target[key]:
                # An object left with no fields goes, as a section left empty does.
                del target[key]
                meta.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)
            meta[key] = metadata_of(value, timestamp)


# ---------------------------------------------------------------------------------------------
# Requests


def _reject_constant(name: str) -> Json:
    raise ValueError(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(text)
    return value


def parse_json(payload: bytes) -> Json:
    """UTF-8 JSON or ShadowError 415/400. NaN, Infinity, overflowing numbers and strings that
    are not Unicode (lone surrogate escapes) are not JSON we can store."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ShadowError(415, UNSUPPORTED_ENCODING) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeEncodeError):
        raise ShadowError(400, INVALID_JSON) from None
    return value


def client_token_of(request: Json) -> str | None:
    """The request's clientToken: None when absent; 400 "Invalid clientToken" when it is not a
    string or is longer than 64 bytes."""
    if not isinstance(request, dict) or "clientToken" not in request:
        return None
    token = request["clientToken"]
    if not isinstance(token, str):
        raise ShadowError(400, INVALID_CLIENT_TOKEN)
    if len(token.encode("utf-8")) > MAX_CLIENT_TOKEN_BYTES:
        raise ShadowError(400, INVALID_CLIENT_TOKEN)
    return token


def lenient_client_token(payload: bytes) -> str | None:
    """For /get and /delete, whose payload AWS ignores ("Device Shadow MQTT topics"): the
    clientToken if the payload is a JSON object with a valid one, else None. Never raises."""
    if not payload.strip():
        return None
    try:
        return client_token_of(parse_json(payload))
    except ShadowError:
        return None


@dataclass(frozen=True)
class UpdateRequest:
    """A validated update request."""

    state: dict[str, Json] | None  # None: `"state": null` clears both sections
    version: int | None
    client_token: str | None


def parse_update(payload: bytes) -> UpdateRequest:
    """Validate an update request ("Device Shadow error messages" for the 400s). Only `state`,
    `version` and `clientToken` matter; other top-level fields are ignored ("Diagnosing
    problems with shadows": content outside desired/reported is not stored)."""
    request = parse_json(payload)
    if not isinstance(request, dict):
        raise ShadowError(400, INVALID_JSON)
    token = client_token_of(request)
    try:
        version = request.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise ShadowError(400, INVALID_VERSION)
        if "state" not in request:
            raise ShadowError(400, MISSING_STATE)
        state = request["state"]
        if state is None:
            # "Interacting with shadows": setting the state to null does not delete the shadow.
            return UpdateRequest(None, version, token)
        if not isinstance(state, dict):
            raise ShadowError(400, STATE_NOT_OBJECT)
        for key in state:
            if key not in SECTIONS:
                raise ShadowError(400, INVALID_NODE)
        for key, message in (("desired", DESIRED_NOT_OBJECT), ("reported", REPORTED_NOT_OBJECT)):
            if key in state and state[key] is not None and not isinstance(state[key], dict):
                raise ShadowError(400, message)
        for key in SECTIONS:
            section = state.get(key)
            if section is None:
                continue
            if depth(section) > MAX_DEPTH:
                raise ShadowError(400, TOO_DEEP)
            if _array_has_null(section):
                raise ShadowError(400, INVALID_NODE)
        return UpdateRequest(state, version, token)
    except ShadowError as e:
        raise e.with_token(token) from None


@dataclass(frozen=True)
class UpdateResult:
    """What an accepted update produces: the new stored document and the three documents AWS
    publishes (`delta` is None when no `/update/delta` message goes out)."""

    document: ShadowDocument
    previous: ShadowDocument | None
    accepted: dict[str, Json]
    delta: dict[str, Json] | None
    documents: dict[str, Json]
    client_token: str | None


def base_version(deleted_version: int | None, deleted_at: float | None, now: float) -> int:
    """The version a (re-)created shadow counts on from: the deleted shadow's within 48 hours
    of its deletion, else 0 ("Interacting with shadows")."""
    if deleted_version is None or deleted_at is None:
        return 0
    return deleted_version if now - deleted_at <= VERSION_RETENTION_SECONDS else 0


def apply_update(current: ShadowDocument | None, payload: bytes, now: int,
                 base: int = 0) -> UpdateResult:
    """Apply an update request (raw payload) to `current` (None: no shadow yet, and `base` is
    the version to continue from, see `base_version`) at time `now` (epoch seconds).

    Raises ShadowError: 415/400 for a malformed request, 409 "Version conflict" when the request's
    `version` is not the current one, 413 when the resulting desired + reported exceed 8 KB."""
    request = parse_update(payload)
    token = request.client_token
    current_version = current.version if current is not None else base
    if request.version is not None and request.version != current_version:
        # "Interacting with shadows" (Optimistic locking): 409 when versions differ.
        raise ShadowError(409, VERSION_CONFLICT, token)

    sections: dict[str, dict[str, Json] | None] = {
        "desired": copy.deepcopy(current.desired) if current else None,
        "reported": copy.deepcopy(current.reported) if current else None,
    }
    metas: dict[str, dict[str, Json] | None] = {
        "desired": copy.deepcopy(current.metadata_desired) if current else None,
        "reported": copy.deepcopy(current.metadata_reported) if current else None,
    }
    requested = request.state
    if requested is None:
        sections = {"desired": None, "reported": None}
        metas = {"desired": None, "reported": None}
        requested_sections: dict[str, Json] = {}
    else:
        requested_sections = requested
    for key in SECTIONS:
        if key not in requested_sections:
            continue
        patch = requested_sections[key]
        if patch is None:
            # "Empty shadow document properties": a section set to null is removed.
            sections[key] = None
            metas[key] = None
            continue
        target = sections[key] or {}
        meta = metas[key] or {}
        _merge(target, meta, patch, now)
        sections[key], metas[key] = (target, meta) if target else (None, None)

    if state_size(sections["desired"], sections["reported"]) > MAX_STATE_BYTES:
        raise ShadowError(413, TOO_LARGE, token)

    new = ShadowDocument(sections["desired"], sections["reported"], metas["desired"],
                         metas["reported"], current_version + 1, now)

    accepted_meta: dict[str, Json] = {}
    for key in SECTIONS:
        if key in requested_sections:
            accepted_meta[key] = metadata_of(requested_sections[key], now)
    accepted: dict[str, Json] = {
        "state": copy.deepcopy(requested) if requested is not None else {},
        "metadata": accepted_meta, "version": new.version, "timestamp": now,
    }
    if token is not None:
        accepted["clientToken"] = token

    delta_doc: dict[str, Json] | None = None
    delta = new.delta()
    # "Device Shadow MQTT topics" (/update/delta): published when an accepted update leaves
    # desired and reported different. We publish it only for requests that carry a desired
    # object (a device's reported-only update does not re-announce an unchanged delta).
    if delta and isinstance(requested_sections.get("desired"), dict):
        delta_doc = {"version": new.version, "timestamp": now, "state": delta,
                     "metadata": delta_metadata(delta, new.metadata_desired or {})}
        if token is not None:
            delta_doc["clientToken"] = token

    documents: dict[str, Json] = {
        "previous": current.snapshot() if current is not None else None,
        "current": new.snapshot(), "timestamp": now,
    }
    if token is not None:
        documents["clientToken"] = token
    return UpdateResult(new, current, accepted, delta_doc, documents, token)


def encode(doc: dict[str, Json]) -> bytes:
    """A response document as the bytes published or returned."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
