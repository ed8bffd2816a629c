"""Fleet indexing's query language, parsed into a small tree of our own (pure).

AWS's syntax ("Query syntax", AWS IoT developer guide) is Lucene's, parsed here by luqum, plus
what AWS adds that Lucene does not read: a comparison without a colon (`field>20`,
`field<=5`) is rewritten to luqum's `field:>20` first (luqum reads `field>20` as one bare
word). AWS's rules: the default operator is AND; at most 12 terms; a leading wildcard in at
most one term, and then a query of at most 100 characters; no regular expressions, fuzzy
searches, proximity searches or boosting. Field names are case-sensitive, values are not
(the evaluator's business, `evaluate.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from luqum import tree
from luqum.exceptions import ParseError
from luqum.parser import parser

MAX_TERMS = 12  # "Query syntax": the maximum number of terms in a query is 12
LEADING_WILDCARD_MAX_LENGTH = 100  # "Query syntax": a query with a leading wildcard


class QueryError(ValueError):
    """A query AWS would refuse (InvalidQueryException), with the reason."""


@dataclass(frozen=True, slots=True)
class Term:
    """One search term. `field` None searches every field. `kind` is one of:
    match (value), wildcard (value with * and ?), exists (value "*"), range."""

    field: str | None
    kind: str
    value: str = ""
    low: str | None = None  # range: None is unbounded
    high: str | None = None
    include_low: bool = True
    include_high: bool = True


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Term | And | Or | Not

# `name>20`, `name<=x` outside quotes: a field name right before a comparison, no colon.
_BARE_COMPARISON = re.compile(r"([A-Za-z_$][\w.$-]*)(>=|<=|>|<)")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


# A negative number as a bound (`[-5 TO 0]`, `t:>-5`): luqum reads `-` there as NOT.
_NEGATIVE_BOUND = re.compile(r"(\[|\{|:>=?|:<=?|\bTO)(\s*)-(?=[\d.])")


def _outside_quotes(part: str) -> str:
    return _NEGATIVE_BOUND.sub(r"\1\2\\-", _BARE_COMPARISON.sub(r"\1:\2", part))


def normalize(text: str) -> str:
    """AWS's `field>20` as luqum's `field:>20`, and a negative bound escaped (text inside
    quotes left as it is)."""
    out, at = [], 0
    for m in _QUOTED.finditer(text):
        out.append(_outside_quotes(text[at:m.start()]))
        out.append(m.group(0))
        at = m.end()
    out.append(_outside_quotes(text[at:]))
    return "".join(out)


def parse(text: str) -> Node:
    """The query's tree; QueryError with one sentence for a query AWS refuses."""
    if not text.strip():
        raise QueryError("The query string is empty.")
    try:
        raw = parser.parse(normalize(text))
    except (ParseError, TypeError, ValueError) as e:
        raise QueryError(f"Syntax error in query string {text!r}: {e}") from None
    except ArithmeticError:  # decimal's InvalidOperation: a boost that is no number (`a^.`)
        raise QueryError(f"Syntax error in query string {text!r}: a boost (^) must be a "
                         "number") from None
    node = _convert(raw, None)
    terms = list(_terms(node))
    if len(terms) > MAX_TERMS:
        raise QueryError(f"The query has {len(terms)} terms; at most {MAX_TERMS} are allowed.")
    leading = [t for t in terms if t.kind == "wildcard" and t.value[:1] in ("*", "?")]
    if len(leading) > 1:
        raise QueryError("A leading wildcard may be used in only one term of a query.")
    if leading and len(text) > LEADING_WILDCARD_MAX_LENGTH:
        raise QueryError("A query with a leading wildcard may be at most "
                         f"{LEADING_WILDCARD_MAX_LENGTH} characters long.")
    return node


def _terms(node: Node) -> list[Term]:
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return _terms(node.item)
    return [t for item in node.items for t in _terms(item)]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _word(word: tree.Term, field: str | None) -> Term:
    value = str(word.value)
    if isinstance(word, tree.Phrase):
        return Term(field, "match", _unescape(value[1:-1]))
    if value == "*":
        return Term(field, "exists", "*")
    # An unescaped * or ? makes a wildcard term.
    if re.search(r"(?<!\\)[*?]", value):
        return Term(field, "wildcard", value)
    return Term(field, "match", _unescape(value))


def _bound(item: tree.Item) -> str | None:
    if isinstance(item, tree.Prohibit) and isinstance(item.a, tree.Word):
        return "-" + _unescape(str(item.a.value))  # luqum reads a negative bound as -word
    if not isinstance(item, tree.Term):
        raise QueryError(f"A range bound must be a value, not {item}.")
    value = str(item.value)
    if isinstance(item, tree.Phrase):
        return _unescape(value[1:-1])
    return None if value == "*" else _unescape(value)


_UNSUPPORTED = {tree.Regex: "regular expressions", tree.Fuzzy: "fuzzy searches",
                tree.Proximity: "proximity searches", tree.Boost: "boosting"}


def _convert(node: tree.Item, field: str | None) -> Node:
    for kind, what in _UNSUPPORTED.items():
        if isinstance(node, kind):
            raise QueryError(f"Fleet indexing queries do not support {what} ({node}).")
    if isinstance(node, tree.SearchField):
        if field is not None:
            raise QueryError(f"Field {node.name} is nested inside field {field}.")
        return _convert(node.expr, str(node.name))
    if isinstance(node, (tree.Group, tree.FieldGroup)):
        return _convert(node.expr, field)
    if isinstance(node, (tree.AndOperation, tree.UnknownOperation)):
        return And(tuple(_convert(c, field) for c in node.children))  # AND by default
    if isinstance(node, tree.OrOperation):
        return Or(tuple(_convert(c, field) for c in node.children))
    if isinstance(node, (tree.Not, tree.Prohibit)):
        return Not(_convert(node.a, field))
    if isinstance(node, tree.Plus):
        return _convert(node.a, field)
    if isinstance(node, tree.Range):
        return Term(field, "range", low=_bound(node.low), high=_bound(node.high),
                    include_low=node.include_low, include_high=node.include_high)
    if isinstance(node, tree.From):
        return Term(field, "range", low=_bound(node.a), include_low=node.include)
    if isinstance(node, tree.To):
        return Term(field, "range", high=_bound(node.a), include_high=node.include)
    if isinstance(node, tree.Term):
        return _word(node, field)
    raise QueryError(f"Fleet indexing queries do not support {node}.")


def fields(node: Node) -> set[str]:
    """The fields a query names (unfielded terms excluded)."""
    return {t.field for t in _terms(node) if t.field is not None}
