"""What AWS IoT SQL reads differently from the SQL sqlglot parses, rewritten before parsing.

sqlglot parses with its MySQL dialect, which already reads AWS IoT SQL's literals the AWS way:
`'text'` and `"text"` are both string literals (the "JSON extensions" page compares with
`"myValue"`, and the workshop's JITR rule with `"PENDING_ACTIVATION"`), and backticks quote
names. Two constructs remain that no SQL dialect reads, so this pre-pass rewrites them,
outside string literals only:

- the top-level `FROM 'topic/+/filter/#'` ("FROM clause": a quoted MQTT topic filter, not a
  table): taken out and replaced by the placeholder table `__topic__`;
- `SELECT VALUE expr` ("SQL versions", 2016-03-23: an array as the top-level output; "Nested
  object queries"): rewritten to `SELECT __value__, expr`, a marker column the compiler
  recognises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOPIC_TABLE = "__topic__"
VALUE_MARKER = "__value__"

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"\s*")


class SqlSyntaxError(ValueError):
    """The statement cannot be parsed; the message says where."""


@dataclass(frozen=True)
class Prepared:
    text: str          # what sqlglot parses
    topic_filter: str  # the FROM clause's topic filter


def _quoted_end(sql: str, start: int) -> int:
    """Index just past the quoted literal or name opening at `start` (a doubled quote escapes
    itself)."""
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == "\\" and quote != "`":
            i += 2
            continue
        if sql[i] == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise SqlSyntaxError(f"unterminated {quote} quote starting at character {start + 1}")


def _unquote(literal: str) -> str:
    quote = literal[0]
    return literal[1:-1].replace(quote * 2, quote)


def prepare(sql: str) -> Prepared:
    out: list[str] = []
    topic: str | None = None
    depth = 0
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`":
            end = _quoted_end(sql, i)
            out.append(sql[i:end])
            i = end
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        word = _WORD.match(sql, i) if (ch.isalpha() or ch == "_") else None
        if word is None:
            out.append(ch)
            i += 1
            continue
        token = word.group().upper()
        i = word.end()
        if token == "FROM" and depth == 0 and topic is None:
            j = _SPACE.match(sql, i).end()  # type: ignore[union-attr]
            if j >= len(sql) or sql[j] not in "'\"":
                raise SqlSyntaxError(
                    f"FROM at character {word.start() + 1} must be followed by a quoted topic "
                    "filter, as in FROM 'device/+/data'")
            end = _quoted_end(sql, j)
            topic = _unquote(sql[j:end])
            out.append(f"FROM {TOPIC_TABLE}")
            i = end
            continue
        if token == "SELECT":
            value = re.compile(r"\s+VALUE\b(?=\s)", re.IGNORECASE).match(sql, i)
            if value is not None:
                out.append(f"{word.group()} {VALUE_MARKER},")
                i = value.end()
                continue
        out.append(word.group())
    if topic is None:
        raise SqlSyntaxError("the statement has no FROM clause with a quoted topic filter")
    return Prepared("".join(out), topic)
