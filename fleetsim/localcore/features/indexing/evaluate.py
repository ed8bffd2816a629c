"""Whether a thing's indexed fields satisfy a query (pure).

A document is flat: each field name (`thingName`, `attributes.room_number`,
`shadow.reported.temperature`, ...) maps to the list of its values (strings, numbers,
booleans; an array contributes each element). "Query syntax", AWS IoT developer guide: search
is case-insensitive (values compare case-folded); field names are case-sensitive; a term
without a field is looked for in every field. A number compares as a number with a numeric
term or bound (so a reported temperature 21 is above `20`, and 100 is not below `20`); a
string attribute that reads as a number does too (attributes are strings in the registry).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from fleetsim.localcore.features.indexing.query import And, Node, Not, Or, Term, parse

Value = str | int | float | bool
Document = Mapping[str, Sequence[Value]]
Predicate = Callable[[Document], bool]


def number(value: Value | str | None) -> float | None:
    """The value as a finite number, None if it is not one (booleans are not numbers)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        n = float(value)
    except ValueError:
        return None
    return n if math.isfinite(n) else None


def text(value: Value) -> str:
    """How a value reads as a term, case-folded (true/false for booleans, 21 for 21.0)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).casefold()


def _match(term: str) -> Callable[[Value], bool]:
    wanted, n = term.casefold(), number(term)

    def test(v: Value) -> bool:
        if n is not None and not isinstance(v, (bool, str)):
            return float(v) == n
        return text(v) == wanted
    return test


def _wildcard(pattern: str) -> Callable[[Value], bool]:
    # fnmatch's syntax, escaped: only * and ? are wildcards ("\*" is a literal star).
    parts = re.split(r"(\\.|[*?])", pattern.casefold())
    regex = "".join(".*" if p == "*" else "." if p == "?" else
                    re.escape(p[1:] if p.startswith("\\") else p) for p in parts)
    compiled = re.compile(regex, re.DOTALL)
    return lambda v: compiled.fullmatch(text(v)) is not None


def _range(term: Term) -> Callable[[Value], bool]:
    low, high = term.low, term.high
    n_low, n_high = number(low), number(high)
    numeric = (low is None or n_low is not None) and (high is None or n_high is not None)

    def within(v: Value, lo: object, hi: object) -> bool:
        if lo is not None and (v < lo or (v == lo and not term.include_low)):  # type: ignore
            return False
        return hi is None or not (v > hi or (v == hi and not term.include_high))  # type: ignore

    def test(v: Value) -> bool:
        if isinstance(v, bool):
            return False
        if numeric:
            n = number(v)
            return n is not None and within(n, n_low, n_high)
        return within(text(v), low.casefold() if low is not None else None,
                      high.casefold() if high is not None else None)
    return test


def _value_test(term: Term) -> Callable[[Value], bool]:
    if term.kind == "match":
        return _match(term.value)
    if term.kind == "wildcard":
        return _wildcard(term.value)
    return _range(term)


def _term(term: Term) -> Predicate:
    field = term.field
    if term.kind == "exists":
        if field is None:
            return lambda doc: True  # `*`: every thing
        prefix = field + "."
        return lambda doc: field in doc or any(k.startswith(prefix) for k in doc)
    test = _value_test(term)
    if field is None:
        return lambda doc: any(test(v) for values in doc.values() for v in values)
    return lambda doc: any(test(v) for v in doc.get(field, ()))


def compile_node(node: Node) -> Predicate:
    if isinstance(node, Term):
        return _term(node)
    if isinstance(node, Not):
        inner = compile_node(node.item)
        return lambda doc: not inner(doc)
    parts = tuple(compile_node(n) for n in node.items)
    if isinstance(node, And):
        return lambda doc: all(p(doc) for p in parts)
    assert isinstance(node, Or)
    return lambda doc: any(p(doc) for p in parts)


@lru_cache(maxsize=256)
def compile_query(query: str) -> tuple[Node, Predicate]:
    """The query's tree and predicate (QueryError for a query AWS refuses); cached."""
    node = parse(query)
    return node, compile_node(node)


def matches(query: str, doc: Document) -> bool:
    return compile_query(query)[1](doc)
