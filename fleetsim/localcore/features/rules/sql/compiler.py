"""AWS IoT SQL statements: parsed by sqlglot (after `prepass`), compiled to Python closures
evaluated against one message (`MessageContext`).

Compiling once at rule creation does two jobs: it refuses, with one sentence, what the rules
engine cannot run (CreateTopicRule's SqlParseException), and it makes evaluation cheap (many
rules x many messages)."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from fleetsim.localcore.features.rules.sql import values as v
from fleetsim.localcore.features.rules.sql.context import NOT_JSON, MessageContext
from fleetsim.localcore.features.rules.sql.functions import FUNCTIONS, SINCE_2016
from fleetsim.localcore.features.rules.sql.prepass import (
    TOPIC_TABLE,
    VALUE_MARKER,
    SqlSyntaxError,
    prepare,
)

V2015 = "2015-10-08"
V2016 = "2016-03-23"
VERSIONS = (V2015, V2016, "beta")
DEFAULT_VERSION = V2015  # "SQL versions": what a rule without awsIotSqlVersion uses

Eval = Callable[[MessageContext, Any], Any]  # (message, current object) -> value


class Star:
    """`*` as a function argument (encode(*, 'base64')): the raw payload."""


@dataclass(frozen=True)
class Item:
    name: str | None  # None: `*`
    evaluate: Eval


@dataclass(frozen=True)
class Select:
    items: tuple[Item, ...]
    value: bool           # SELECT VALUE expr
    where: Eval | None
    source: Eval | None   # nested queries: the array (or object) they run over


@dataclass(frozen=True)
class Query:
    topic_filter: str
    version: str
    select: Select

    def where_matches(self, ctx: MessageContext) -> bool:
        where = self.select.where
        return where is None or where(ctx, ctx.document) is True

    def output(self, ctx: MessageContext) -> bytes | None:
        """The rule's outgoing payload ("SELECT clause"), or None when there is nothing to send
        (a SELECT VALUE that is Undefined)."""
        sel = self.select
        doc = ctx.document
        if sel.value:
            result = sel.items[0].evaluate(ctx, doc)
            return None if result is v.UNDEFINED else _dump(result)
        if doc is NOT_JSON or not isinstance(doc, dict):
            stars = [i for i in sel.items if i.name is None]
            if stars and len(sel.items) == 1:
                # "Working with binary payloads": `SELECT *` passes the payload through as is.
                return ctx.payload
            doc = {} if (not ctx.payload and stars) else doc
        return _dump(_row(sel, ctx, doc))


def _row(sel: Select, ctx: MessageContext, current: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in sel.items:
        if item.name is None:
            if isinstance(current, dict):
                out.update(current)
            continue
        value = item.evaluate(ctx, current)
        if value is not v.UNDEFINED:  # "Data types": Undefined values are left out
            out[item.name] = value
    return out


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class SqlError(ValueError):
    """Why a statement is refused (the message of AWS's SqlParseException)."""


def compile_sql(sql: str, version: str = DEFAULT_VERSION) -> Query:
    try:
        prepared = prepare(sql)
    except SqlSyntaxError as e:
        raise SqlError(str(e)) from None
    try:
        tree = sqlglot.parse_one(prepared.text, dialect="mysql")
    except (ParseError, TokenError) as e:
        raise SqlError(f"Syntax error in statement: {_describe(e)}") from None
    if not isinstance(tree, exp.Select):
        raise SqlError("the statement must be a SELECT ... FROM 'topic/filter' query")
    from_ = tree.args.get("from_") or tree.args.get("from")
    table = from_.this if from_ is not None else None
    if not (isinstance(table, exp.Table) and table.name == TOPIC_TABLE and not table.alias):
        raise SqlError("the FROM clause must name one quoted topic filter")
    _check_topic_filter(prepared.topic_filter)
    return Query(prepared.topic_filter, version, _Compiler(version).select(tree, nested=False))


def compile_expression(text: str, version: str = V2016) -> Eval:
    """One expression (a substitution template's `${...}`), against the original payload."""
    try:
        tree = sqlglot.parse_one(f"SELECT {text} FROM {TOPIC_TABLE}", dialect="mysql")
    except (ParseError, TokenError) as e:
        raise SqlError(f"Syntax error in substitution template ${{{text}}}: "
                       f"{_describe(e)}") from None
    if not isinstance(tree, exp.Select) or len(tree.expressions) != 1 or tree.args.get("where"):
        raise SqlError(f"substitution template ${{{text}}} is not one expression")
    return _Compiler(version).expr(tree.expressions[0])


def _describe(e: ParseError | TokenError) -> str:
    """Where sqlglot stopped, in words (its own message names its internal classes)."""
    errors = getattr(e, "errors", None) or []
    if errors and errors[0].get("highlight"):
        return f"unexpected '{errors[0]['highlight']}' near '{errors[0].get('start_context', '')}'"
    return "the statement is incomplete or malformed"


def _check_topic_filter(topic_filter: str) -> None:
    if not topic_filter:
        raise SqlError("the FROM clause's topic filter is empty")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise SqlError(f"topic filter '{topic_filter}': '#' must be a whole last level")
        if "+" in level and level != "+":
            raise SqlError(f"topic filter '{topic_filter}': '+' must be a whole level")


_COMPARE: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.EQ: v.equal, exp.NEQ: v.not_equal,
    exp.GT: v.compare(operator.gt), exp.GTE: v.compare(operator.ge),
    exp.LT: v.compare(operator.lt), exp.LTE: v.compare(operator.le),
    exp.Add: v.arithmetic(operator.add), exp.Sub: v.arithmetic(operator.sub),
    exp.Mul: v.arithmetic(operator.mul),
    exp.Div: v.arithmetic(v.divide, zero_check=True),
    exp.Mod: v.arithmetic(v.modulo, zero_check=True),
    exp.And: v.logical_and, exp.Or: v.logical_or,
}


class _Compiler:
    def __init__(self, version: str):
        self.version = version

    def _since_2016(self, what: str) -> None:
        if self.version == V2015:
            raise SqlError(f"{what} needs awsIotSqlVersion 2016-03-23 or later "
                           "(this rule uses 2015-10-08)")

    def select(self, node: exp.Select, nested: bool) -> Select:
        for key in ("group", "order", "having", "limit", "joins", "distinct", "with",
                    "windows", "offset"):
            if node.args.get(key):
                raise SqlError(f"AWS IoT SQL has no {key.upper()} clause")
        expressions = list(node.expressions)
        value = False
        first = expressions[0] if expressions else None
        if isinstance(first, exp.Column) and first.name == VALUE_MARKER and not first.table:
            self._since_2016("SELECT VALUE")
            value = True
            expressions = expressions[1:]
            if len(expressions) != 1:
                raise SqlError("SELECT VALUE takes exactly one expression")
        if not expressions:
            raise SqlError("the SELECT clause selects nothing")
        items = tuple(self.item(e, i + 1) for i, e in enumerate(expressions))
        if value and items[0].name is None:
            raise SqlError("SELECT VALUE * is not a valid statement")
        where_node = node.args.get("where")
        where = self.expr(where_node.this) if where_node is not None else None
        source = None
        if nested:
            table = node.args.get("from_") or node.args.get("from")
            if table is None or not isinstance(table.this, exp.Table):
                raise SqlError("a nested SELECT must read FROM a field of the message")
            source = self.path([p.name for p in table.this.parts])
        return Select(items, value, where, source)

    def item(self, node: exp.Expression, position: int) -> Item:
        if isinstance(node, exp.Star):
            return Item(None, lambda ctx, cur: cur)
        if isinstance(node, exp.Alias):
            return Item(node.alias, self.expr(node.this))
        return Item(_default_name(node, position), self.expr(node))

    def path(self, names: list[str]) -> Eval:
        if any(n == VALUE_MARKER for n in names):
            raise SqlError("VALUE may only follow SELECT")

        def lookup(ctx: MessageContext, cur: Any) -> Any:
            for name in names:
                cur = v.field(cur, name)
                if cur is v.UNDEFINED:
                    return cur
            return cur
        return lookup

    def expr(self, node: exp.Expression) -> Eval:
        if isinstance(node, exp.Column):
            return self.path([p.name for p in node.parts])
        if isinstance(node, exp.Dot):
            inner, name = self.expr(node.this), node.expression.name
            return lambda ctx, cur: v.field(inner(ctx, cur), name)
        if isinstance(node, exp.Literal):
            literal = _literal(node)
            return lambda ctx, cur: literal
        if isinstance(node, exp.Boolean):
            flag = bool(node.this)
            return lambda ctx, cur: flag
        if isinstance(node, exp.Null):
            return lambda ctx, cur: None
        if isinstance(node, exp.Paren):
            return self.expr(node.this)
        if isinstance(node, exp.Neg):
            inner = self.expr(node.this)
            return lambda ctx, cur: v.negate(inner(ctx, cur))
        if isinstance(node, exp.Not):
            inner = self.expr(node.this)
            return lambda ctx, cur: v.logical_not(inner(ctx, cur))
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            inner = self.expr(node.this)
            return lambda ctx, cur: inner(ctx, cur) is None
        binary = _COMPARE.get(type(node))
        if binary is not None:
            left, right = self.expr(node.this), self.expr(node.expression)
            return lambda ctx, cur: binary(left(ctx, cur), right(ctx, cur))
        if isinstance(node, exp.In):
            return self.in_list(node)
        if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
            self._since_2016("A nested SELECT (nested object query)")
            return self.nested(self.select(node.this, nested=True))
        if isinstance(node, exp.Star):
            return lambda ctx, cur: Star
        if isinstance(node, exp.Func):
            return self.function(node)
        raise SqlError(f"local core's rules engine does not evaluate '{node.sql(dialect='mysql')}'"
                       " (see the rules section of the README for what it does)")

    def in_list(self, node: exp.In) -> Eval:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise SqlError("IN takes a list of values")
        needle = self.expr(node.this)
        options = [self.expr(e) for e in node.expressions]

        def evaluate(ctx: MessageContext, cur: Any) -> Any:
            x = needle(ctx, cur)
            if x is v.UNDEFINED:
                return v.UNDEFINED
            return any(v.equal(x, o(ctx, cur)) is True for o in options)
        return evaluate

    def nested(self, sel: Select) -> Eval:
        """"Nested object queries": the inner SELECT runs over each element of an array."""
        source = sel.source
        assert source is not None

        def evaluate(ctx: MessageContext, cur: Any) -> Any:
            items = source(ctx, cur)
            if not isinstance(items, list):
                return v.UNDEFINED
            out = []
            for element in items:
                if sel.where is not None and sel.where(ctx, element) is not True:
                    continue
                if sel.value:
                    value = sel.items[0].evaluate(ctx, element)
                    if value is not v.UNDEFINED:
                        out.append(value)
                else:
                    out.append(_row(sel, ctx, element))
            return out
        return evaluate

    def function(self, node: exp.Func) -> Eval:
        name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise SqlError(f"unknown function {name}() (local core evaluates "
                           f"{', '.join(sorted(FUNCTIONS))})")
        if name in SINCE_2016:
            self._since_2016(f"{name}()")
        low, high, impl = spec
        args = [self.expr(cast(exp.Expression, a)) for a in node.iter_expressions()]
        if not low <= len(args) <= high:
            raise SqlError(f"{name}() takes {low if low == high else f'{low} to {high}'} "
                           f"argument(s), not {len(args)}")

        def evaluate(ctx: MessageContext, cur: Any) -> Any:
            values = [a(ctx, cur) for a in args]
            values = [ctx.payload if x is Star else x for x in values]
            return impl(ctx, values)
        return evaluate


def _literal(node: exp.Literal) -> Any:
    if node.is_string:
        return node.this
    text = str(node.this)
    try:
        return int(text)
    except ValueError:
        return float(text)


def _default_name(node: exp.Expression, position: int) -> str:
    """The output key of an expression without AS: a field's last name, a function's name,
    else `_<position>`."""
    if isinstance(node, exp.Column | exp.Dot):
        return node.name
    if isinstance(node, exp.Anonymous):
        return str(node.name)
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return f"_{position}"
