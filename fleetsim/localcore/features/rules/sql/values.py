"""AWS IoT SQL values and operators ("Data types", "Operators" in the AWS IoT SQL reference).

Values are Python's JSON values (dict, list, str, int, float, bool, None for JSON null) plus
`UNDEFINED`: what a field that does not exist, or an operation on operands of the wrong types,
evaluates to. An Undefined value is left out of a rule's output, and a WHERE clause that is not
the Boolean true (Undefined included) does not match.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "Undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()
Value = Any


def is_number(v: Value) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def as_number(v: Value) -> int | float | None:
    """A number, or a string that reads as one ("Operators": strings are converted when they
    can be); else None."""
    if is_number(v):
        return v
    if isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except InvalidOperation:
            return None
        if not d.is_finite():
            return None
        return int(d) if d == d.to_integral_value() and "." not in v and "e" not in v.lower() \
            else float(d)
    return None


def as_boolean(v: Value) -> bool | None:
    """A Boolean, or the case-insensitive strings "true"/"false" (AND, OR, NOT); else None."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def logical_and(a: Value, b: Value) -> Value:
    x, y = as_boolean(a), as_boolean(b)
    return UNDEFINED if x is None or y is None else x and y


def logical_or(a: Value, b: Value) -> Value:
    x, y = as_boolean(a), as_boolean(b)
    return UNDEFINED if x is None or y is None else x or y


def logical_not(a: Value) -> Value:
    x = as_boolean(a)
    return UNDEFINED if x is None else not x


def equal(a: Value, b: Value) -> Value:
    """`=`: Undefined when either side is; numbers compare by value (1 = 1.0)."""
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    if is_number(a) and is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    return bool(a == b)


def not_equal(a: Value, b: Value) -> Value:
    eq = equal(a, b)
    return eq if eq is UNDEFINED else not eq


def _ordered(a: Value, b: Value) -> tuple[Any, Any] | None:
    """Operands of <, <=, >, >=: two numbers (or strings that read as numbers), or two strings
    compared as strings; anything else is Undefined."""
    if a is UNDEFINED or b is UNDEFINED:
        return None
    x, y = as_number(a), as_number(b)
    if x is not None and y is not None:
        return x, y
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    return None


def compare(op: Callable[[Any, Any], bool]) -> Callable[[Value, Value], Value]:
    def apply(a: Value, b: Value) -> Value:
        pair = _ordered(a, b)
        return UNDEFINED if pair is None else op(*pair)
    return apply


def arithmetic(op: Callable[[Any, Any], Any], *, zero_check: bool = False
               ) -> Callable[[Value, Value], Value]:
    """+, -, *, /, %: numbers, or strings that read as numbers; else Undefined."""
    def apply(a: Value, b: Value) -> Value:
        x, y = as_number(a), as_number(b)
        if x is None or y is None or (zero_check and y == 0):
            return UNDEFINED
        result = op(x, y)
        if isinstance(result, float) and not math.isfinite(result):
            return UNDEFINED
        return result
    return apply


def divide(x: int | float, y: int | float) -> int | float:
    if isinstance(x, int) and isinstance(y, int):
        q = abs(x) // abs(y)  # Int / Int truncates toward zero, as Java's does
        return q if (x >= 0) == (y >= 0) else -q
    return x / y


def modulo(x: int | float, y: int | float) -> int | float:
    return math.fmod(x, y) if isinstance(x, float) or isinstance(y, float) else \
        int(math.fmod(x, y))


def negate(a: Value) -> Value:
    x = as_number(a)
    return UNDEFINED if x is None else -x


def field(value: Value, name: str) -> Value:
    """`value.name`: a member of an object; Undefined for anything else or a missing member."""
    if isinstance(value, dict):
        return value.get(name, UNDEFINED)
    return UNDEFINED


def to_string(v: Value) -> str:
    """How a value reads inside a substitution template (strings bare, the rest as JSON)."""
    import json
    if isinstance(v, str):
        return v
    if v is UNDEFINED:
        return ""
    return json.dumps(v, separators=(",", ":"))
