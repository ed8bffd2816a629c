"""JSON filter patterns (`{ $.level = "ERROR" }`), as "Using filter patterns to match terms in
JSON log events" describes them:

    expr       := and ('||' and)*
    and        := unary ('&&' unary)*
    unary      := '(' expr ')' | test
    test       := selector op value | selector IS NULL | selector NOT EXISTS
                | selector IS TRUE | selector IS FALSE
    selector   := '$' ('.' name | '[' index ']' | "['" name "']")*

A value is a number, a quoted string, a bare string (`{$.logLevel = INFO}`), either with `*`
wildcards, or a `%regex%`. A message that is not a JSON object matches no JSON pattern;
a selector that does not resolve matches only `NOT EXISTS`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fleetsim.localcore.features.logs.syntax import Scanner, Token, comparison, invalid

Test = Callable[[Any], bool]
_MISSING = object()
_STEP = re.compile(r"\.([^.\[\]\s]+)|\[(\d+)\]|\.?\[\s*'([^']*)'\s*\]|\.?\[\s*\"([^\"]*)\"\s*\]")
_PUNCT = ("&&", "||", "(", ")")
_KEYWORDS = {("IS", "NULL"): lambda v: v is None,
             ("IS", "TRUE"): lambda v: v is True,
             ("IS", "FALSE"): lambda v: v is False,
             ("NOT", "EXISTS"): lambda v: v is _MISSING}


def _selector(token: Token) -> Callable[[Any], Any]:
    text = token.text
    if not text.startswith("$"):
        raise invalid(f"expected a selector such as $.field at character {token.at}, "
                      f"found '{text}'")
    steps: list[str | int] = []
    i = 1
    while i < len(text):
        m = _STEP.match(text, i)
        if m is None:
            raise invalid(f"'{text}' at character {token.at} is not a selector "
                          "($.a.b, $.list[0], $.['odd.name'])")
        name, index, quoted1, quoted2 = m.groups()
        steps.append(int(index) if index is not None else
                     (name if name is not None else (quoted1 if quoted1 is not None
                                                     else quoted2)))
        i = m.end()
    if not steps:
        raise invalid(f"the selector at character {token.at} names no field ($.field)")

    def resolve(document: Any) -> Any:
        value = document
        for step in steps:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    return _MISSING
                value = value[step]
            elif isinstance(value, dict) and step in value:
                value = value[step]
            else:
                return _MISSING
        return value
    return resolve


class _Parser:
    def __init__(self, text: str):
        self.scan = Scanner(text, _PUNCT)

    def parse(self) -> Test:
        if self.scan.peek().kind == "end":
            raise invalid("a JSON pattern needs a test between '{' and '}'")
        test = self.expr()
        token = self.scan.peek()
        if token.kind != "end":
            raise invalid(f"unexpected '{token.text}' at character {token.at}")
        return test

    def expr(self) -> Test:
        tests = [self.conjunction()]
        while self.scan.peek().text == "||" and self.scan.peek().kind == "punct":
            self.scan.take()
            tests.append(self.conjunction())
        return tests[0] if len(tests) == 1 else (lambda doc: any(t(doc) for t in tests))

    def conjunction(self) -> Test:
        tests = [self.unary()]
        while self.scan.peek().text == "&&" and self.scan.peek().kind == "punct":
            self.scan.take()
            tests.append(self.unary())
        return tests[0] if len(tests) == 1 else (lambda doc: all(t(doc) for t in tests))

    def unary(self) -> Test:
        token = self.scan.take()
        if token.kind == "punct" and token.text == "(":
            test = self.expr()
            close = self.scan.take()
            if close.text != ")":
                raise invalid(f"the '(' at character {token.at} has no matching ')'")
            return test
        if token.kind != "word":
            raise invalid(f"expected a selector such as $.field at character {token.at}, "
                          f"found '{token.text or 'the end'}'")
        select = _selector(token)
        op = self.scan.take()
        if op.kind == "op":
            compare = comparison(op.text, self.scan.take())
            return lambda doc: (v := select(doc)) is not _MISSING and compare(v)
        if op.kind == "word":
            second = self.scan.take()
            check = _KEYWORDS.get((op.text.upper(), second.text.upper()))
            if check is not None:
                return lambda doc: check(select(doc))
        raise invalid(f"expected =, !=, <, <=, >, >=, IS NULL, IS TRUE, IS FALSE or NOT "
                      f"EXISTS after '{token.text}' at character {op.at}")


def compile_json(inner: str) -> Callable[[str], bool]:
    """The matcher of the JSON pattern `{inner}`."""
    test = _Parser(inner).parse()

    def matches(message: str) -> bool:
        if not message.lstrip().startswith("{"):
            return False
        try:
            document = json.loads(message)
        except (ValueError, RecursionError):
            return False
        return isinstance(document, dict) and test(document)
    return matches
