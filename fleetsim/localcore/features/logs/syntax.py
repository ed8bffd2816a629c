"""What JSON and space-delimited filter patterns share: the error, the scanner of their
tokens, the quoted string (unstructured patterns' quoted terms too), and the comparison of one
value with a pattern's literal (a number, a string with `*` wildcards, or a `%regex%`), as
"Filter pattern syntax for metric filters, subscription filters, filter log events, and Live
Tail" describes them."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class PatternError(ValueError):
    """A filter pattern AWS refuses; the message is the InvalidParameterException's."""


def invalid(reason: str) -> PatternError:
    return PatternError(f"Invalid filter pattern: {reason}")


def read_quoted(text: str, start: int) -> tuple[str, int] | None:
    """(the string, the index after its closing quote) of the double-quoted string at
    `start` (a backslash takes the next character as it is); None without a closing quote."""
    j, chars, n = start + 1, [], len(text)
    while j < n and text[j] != '"':
        if text[j] == "\\" and j + 1 < n:
            j += 1
        chars.append(text[j])
        j += 1
    return None if j >= n else ("".join(chars), j + 1)


def compile_regex(text: str) -> re.Pattern[str]:
    """A `%regex%` body: parentheses are not supported (no sub-patterns)."""
    if "(" in text or ")" in text:
        raise invalid(f"'%{text}%': regular expressions in filter patterns cannot use "
                      "parentheses")
    try:
        return re.compile(text)
    except re.error as e:
        raise invalid(f"'%{text}%' is not a regular expression ({e})") from e


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
    ">=": operator.ge, "<=": operator.le}
OPERATORS = tuple(sorted(_OPS, key=len, reverse=True))  # '>=' before '>'


@dataclass(frozen=True)
class Token:
    kind: str   # 'op', 'str' (quoted), 'word' (bare), 'regex', 'punct', 'end'
    text: str
    at: int     # 1-based character position in the pattern


class Scanner:
    """Tokens of the inside of `{...}` or `[...]`: operators, quoted strings, %regex%,
    punctuation from `punct`, and bare words (anything else up to a blank or punctuation)."""

    def __init__(self, text: str, punct: tuple[str, ...]):
        self.text = text
        self.punct = punct
        self.i = 0
        self.peeked: Token | None = None

    def peek(self) -> Token:
        if self.peeked is None:
            self.peeked = self._next()
        return self.peeked

    def take(self) -> Token:
        token = self.peek()
        self.peeked = None
        return token

    def _next(self) -> Token:
        text, n = self.text, len(self.text)
        while self.i < n and text[self.i].isspace():
            self.i += 1
        start = self.i
        if start >= n:
            return Token("end", "", start + 2)
        for p in self.punct:
            if text.startswith(p, start):
                self.i += len(p)
                return Token("punct", p, start + 2)
        for op in OPERATORS:
            if text.startswith(op, start):
                self.i += len(op)
                return Token("op", op, start + 2)
        if text[start] == '"':
            quoted = read_quoted(text, start)
            if quoted is None:
                raise invalid(f"the string starting at character {start + 2} has no "
                              "closing '\"'")
            string, self.i = quoted
            return Token("str", string, start + 2)
        if text[start] == "%":
            end = text.find("%", start + 1)
            if end < 0:
                raise invalid(f"the regular expression at character {start + 2} has no "
                              "closing '%'")
            self.i = end + 1
            return Token("regex", text[start + 1:end], start + 2)
        j = start
        while (j < n and not text[j].isspace() and text[j] != '"'
               and not any(text.startswith(p, j) for p in self.punct)
               and not any(text.startswith(op, j) for op in ("=", "!=", "<", ">"))):
            j += 1
        self.i = j
        return Token("word", text[start:j], start + 2)


def _glob(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)


Compare = Callable[[Any], bool]


def comparison(op: str, value: Token) -> Compare:
    """A test of one field value against `op value`. A bare number compares with numbers
    (`> 5`, `= 1`); a string (quoted, or bare as `INFO`) with strings, `*` matching any
    characters; `%regex%` searches strings. Only `=` and `!=` apply to strings. A field that
    is absent (None here) matches no comparison."""
    compare = _OPS[op]
    if value.kind == "word" and _NUMBER.fullmatch(value.text):
        number = float(value.text)

        def numeric(field: Any) -> bool:
            if isinstance(field, bool) or not isinstance(field, int | float | str):
                return False
            if isinstance(field, str):
                if not _NUMBER.fullmatch(field):
                    return False
                field = float(field)
            return bool(compare(field, number))
        return numeric
    if op not in ("=", "!="):
        raise invalid(f"'{op}' at character {value.at - len(op) - 1} compares numbers, but "
                      f"'{value.text}' is not a number")
    if value.kind == "regex":
        regex = compile_regex(value.text)

        def regex_match(field: Any) -> bool:
            return isinstance(field, str) and (regex.search(field) is not None) == (op == "=")
        return regex_match
    if value.kind not in ("str", "word") or (value.kind == "word" and not value.text):
        raise invalid(f"expected a value after '{op}' at character {value.at}")
    if "*" in value.text:
        glob = _glob(value.text)

        def wildcard(field: Any) -> bool:
            return isinstance(field, str) and (glob.fullmatch(field) is not None) == (op == "=")
        return wildcard
    text = value.text

    def string(field: Any) -> bool:
        return isinstance(field, str) and (field == text) == (op == "=")
    return string
