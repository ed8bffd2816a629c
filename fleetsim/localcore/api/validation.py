"""Validation of a request against its operation's input shape in botocore's service model, as
AWS's front end does it before any handler runs: types, required members, enums, lengths,
patterns and ranges, at every depth.

Each problem is one phrase in AWS's wording ("Value 'x' at 'thingName' failed to satisfy
constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+"), and the protocol
layer joins them as AWS does ("2 validation errors detected: ...; ..."). Paths name members as
AWS does: `a.b` for structure members, `a.1.member` for list items (1-based), `a.key` for map
values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_INT = ("integer", "long")
_FLOAT = ("float", "double")
_MAX_DEPTH = 32       # deeper than any shape local core serves; a bound for recursive shapes
_MAX_SHOWN = 256      # characters of a value repeated in a message
_MAX_PROBLEMS = 10    # AWS lists a handful, not thousands


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _problem(value: Any, path: str, constraint: str) -> str:
    if value is None:
        return f"Value null at '{path}' failed to satisfy constraint: {constraint}"
    return f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: {constraint}"


_TYPE_NAMES = {"string": "a string", "integer": "an integer", "long": "an integer",
               "float": "a number", "double": "a number", "boolean": "a boolean",
               "timestamp": "a timestamp", "blob": "a base64-encoded string",
               "list": "a list", "map": "a map", "structure": "a structure"}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "string" or kind == "blob":
        return isinstance(value, str | bytes)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in _FLOAT or kind == "timestamp":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind in ("map", "structure"):
        return isinstance(value, dict)
    return True  # document: any JSON


class ShapeValidator:
    """Validates values against the shapes of one service model. Paths name members as
    `member_name` writes them (as the model spells them unless it is given: the query protocol
    writes them in lower camel case, 'roleName')."""

    def __init__(self, shapes: dict[str, Any],
                 member_name: Callable[[str], str] | None = None):
        self._shapes = shapes
        self._name = member_name or str
        self._patterns: dict[str, re.Pattern[str] | None] = {}

    def _pattern(self, text: str) -> re.Pattern[str] | None:
        if text not in self._patterns:
            try:
                self._patterns[text] = re.compile(text)
            except re.error:  # a Java-only construct: AWS checks it, we cannot
                self._patterns[text] = None
        return self._patterns[text]

    def members(self, shape_name: str, params: dict[str, Any],
                required: bool = True) -> list[str]:
        """Problems of `params` (member name -> value) as the top-level input `shape_name`.
        A structure member that is JSON null is removed, at any depth: AWS's deserialiser
        reads it as absent."""
        out: list[str] = []
        self._structure(self._shapes[shape_name], params, "", out, 0, required)
        return out[:_MAX_PROBLEMS]

    def _structure(self, shape: dict[str, Any], value: dict[str, Any], path: str,
                   out: list[str], depth: int, required: bool = True) -> None:
        members = shape.get("members", {})
        if required:
            for name in shape.get("required", ()):
                if value.get(name) is None:
                    out.append(_problem(None, f"{path}{self._name(name)}",
                                        "Member must not be null"))
        for name in [n for n, item in value.items() if item is None]:
            del value[name]
        for name, item in value.items():
            spec = members.get(name)
            if spec is not None:  # unknown members are ignored, as AWS does
                self._value(spec["shape"], item, f"{path}{self._name(name)}", out,
                            depth + 1)

    def _value(self, shape_name: str, value: Any, path: str, out: list[str],
               depth: int) -> None:
        if len(out) >= _MAX_PROBLEMS:
            return
        shape = self._shapes[shape_name]
        kind = shape["type"]
        if depth > _MAX_DEPTH:
            out.append(_problem(value, path, "Member must not be nested this deeply"))
        elif not _type_ok(kind, value):
            out.append(_problem(value, path, f"Member must be {_TYPE_NAMES.get(kind, kind)}"))
        elif kind == "list":
            self._list(shape, value, path, out, depth)
        elif kind == "map":
            self._map(shape, value, path, out, depth)
        elif kind == "structure":
            self._structure(shape, value, f"{path}.", out, depth)
        else:
            out += [_problem(value, path, c) for c in self._scalar(shape, value)]

    def _scalar(self, shape: dict[str, Any], value: Any) -> list[str]:
        """The constraints a value of a string or number shape (of the right type) breaks."""
        kind = shape["type"]
        if kind == "string" and isinstance(value, str):
            out = self._length(shape, len(value))
            text = shape.get("pattern")
            pattern = self._pattern(text) if text else None
            if pattern is not None and pattern.fullmatch(value) is None:
                out.append(f"Member must satisfy regular expression pattern: {text}")
            enum = shape.get("enum")
            if enum is not None and value not in enum:
                out.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
            return out
        out = []
        if kind in _INT or kind in _FLOAT:
            if "min" in shape and value < shape["min"]:
                out.append(f"Member must have value greater than or equal to {shape['min']}")
            if "max" in shape and value > shape["max"]:
                out.append(f"Member must have value less than or equal to {shape['max']}")
        return out

    @staticmethod
    def _length(shape: dict[str, Any], n: int) -> list[str]:
        out = []
        if "min" in shape and n < shape["min"]:
            out.append(f"Member must have length greater than or equal to {shape['min']}")
        if "max" in shape and n > shape["max"]:
            out.append(f"Member must have length less than or equal to {shape['max']}")
        return out

    def _list(self, shape: dict[str, Any], value: list[Any], path: str, out: list[str],
              depth: int) -> None:
        out += [_problem(value, path, c) for c in self._length(shape, len(value))]
        member = shape["member"]["shape"]
        for i, item in enumerate(value, 1):
            if item is None:
                out.append(_problem(None, f"{path}.{i}.member", "Member must not be null"))
            else:
                self._value(member, item, f"{path}.{i}.member", out, depth + 1)

    def _map(self, shape: dict[str, Any], value: dict[str, Any], path: str, out: list[str],
             depth: int) -> None:
        """Keys and scalar values are reported at the map, as AWS does: "Value 'a b' at
        'attributePayload.attributes' failed to satisfy constraint: Map value must satisfy
        constraint: [Member must satisfy regular expression pattern: ...]"."""
        out += [_problem(value, path, c) for c in self._length(shape, len(value))]
        key_shape = self._shapes[shape["key"]["shape"]]
        value_name = shape["value"]["shape"]
        value_shape = self._shapes[value_name]
        scalar = value_shape["type"] not in ("list", "map", "structure")
        for key, item in value.items():
            for c in self._scalar(key_shape, key):
                out.append(_problem(key, path, f"Map keys must satisfy constraint: [{c}]"))
            if item is None:
                out.append(_problem(None, path, "Map value must satisfy constraint: [Member "
                                    "must not be null]"))
            elif not scalar:
                self._value(value_name, item, f"{path}.{key}", out, depth + 1)
            elif not _type_ok(value_shape["type"], item):
                kind = _TYPE_NAMES.get(value_shape["type"], value_shape["type"])
                out.append(_problem(item, path, f"Map value must satisfy constraint: [Member "
                                    f"must be {kind}]"))
            else:
                for c in self._scalar(value_shape, item):
                    out.append(_problem(item, path, f"Map value must satisfy constraint: [{c}]"))


def validation_message(problems: list[str]) -> str:
    """AWS's joined form: "1 validation error detected: ..." / "N validation errors ..."."""
    n = len(problems)
    return f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(problems)


def validation_error_code(operation: dict[str, Any]) -> str:
    """The code an operation answers invalid input with: the validation error its model lists
    (InvalidRequestException for most IoT operations, ValidationException for some,
    InvalidParameterException for CloudWatch Logs)."""
    errors = {e["shape"] for e in operation.get("errors", ())}
    if "InvalidRequestException" in errors:
        return "InvalidRequestException"
    if "ValidationException" in errors:
        return "ValidationException"
    if "InvalidParameterException" in errors:  # CloudWatch Logs
        return "InvalidParameterException"
    return "InvalidRequestException"
