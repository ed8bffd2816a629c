"""Space-delimited filter patterns (`[ip, user, ..., status_code = 404, bytes]`), as "Using
filter patterns to match terms in space-delimited log events" describes them: the message is
split at spaces, text in double quotes or square brackets being one field (without them);
the pattern names the fields in order, `...` standing for any number of them, and a field may
carry a test (`= 404`, `!= 200`, `> 1000`, `= 4*`, `= "*.html*"`), tests being joined with
`&&` and `||` (`status_code = 404 || status_code = 410`). Without `...` the message must have
exactly as many fields as the pattern.
"""

from __future__ import annotations

from collections.abc import Callable

from fleetsim.localcore.features.logs.syntax import Scanner, comparison, invalid

Bindings = dict[str, str]
Test = Callable[[Bindings], bool]
_ANY = "..."


def split_fields(message: str) -> list[str]:
    fields: list[str] = []
    i, n = 0, len(message)
    while i < n:
        ch = message[i]
        if ch == " ":
            i += 1
            continue
        close = {'"': '"', "[": "]"}.get(ch)
        if close is not None:
            end = message.find(close, i + 1)
            if end >= 0:
                fields.append(message[i + 1:end])
                i = end + 1
                continue
        end = message.find(" ", i)
        end = n if end < 0 else end
        fields.append(message[i:end])
        i = end
    return fields


class _Parser:
    def __init__(self, text: str):
        self.scan = Scanner(text, ("&&", "||", ",", _ANY))
        self.names: list[str] = []
        self.tests: list[Test] = []

    def parse(self) -> tuple[list[str], Test]:
        while True:
            token = self.scan.take()
            if token.kind == "punct" and token.text == _ANY:
                self.names.append(_ANY)
            elif token.kind == "word" and token.text:
                self.names.append(token.text)
                if self.scan.peek().kind == "op":
                    self.tests.append(self.expr(token.text))
            else:
                raise invalid(f"expected a field name or ... at character {token.at}, found "
                              f"'{token.text or 'the end'}'")
            token = self.scan.take()
            if token.kind == "end":
                break
            if token.text != ",":
                raise invalid(f"expected ',' between fields at character {token.at}, found "
                              f"'{token.text}'")
        tests = self.tests
        return self.names, lambda bound: all(t(bound) for t in tests)

    def expr(self, first: str) -> Test:
        tests = [self.conjunction(first)]
        while self.scan.peek().text == "||":
            self.scan.take()
            tests.append(self.conjunction(None))
        return tests[0] if len(tests) == 1 else (lambda b: any(t(b) for t in tests))

    def conjunction(self, first: str | None) -> Test:
        tests = [self.test(first)]
        while self.scan.peek().text == "&&":
            self.scan.take()
            tests.append(self.test(None))
        return tests[0] if len(tests) == 1 else (lambda b: all(t(b) for t in tests))

    def test(self, name: str | None) -> Test:
        if name is None:
            token = self.scan.take()
            if token.kind != "word" or not token.text:
                raise invalid(f"expected a field name at character {token.at}")
            name = token.text
        op = self.scan.take()
        if op.kind != "op":
            raise invalid(f"expected =, !=, <, <=, > or >= after '{name}' at character "
                          f"{op.at}")
        compare = comparison(op.text, self.scan.take())
        field = name
        return lambda bound: field in bound and compare(bound[field])


def _align(names: list[str], fields: list[str], test: Test) -> bool:
    """Whether the fields can be bound to the names (`...` taking any number) so that the
    tests hold."""
    bound: Bindings = {}

    def walk(i: int, j: int) -> bool:
        if i == len(names):
            return j == len(fields) and test(bound)
        if names[i] == _ANY:
            return any(walk(i + 1, k) for k in range(j, len(fields) + 1))
        if j >= len(fields):
            return False
        bound[names[i]] = fields[j]
        return walk(i + 1, j + 1)

    return walk(0, 0)


def compile_delimited(inner: str) -> Callable[[str], bool]:
    """The matcher of the space-delimited pattern `[inner]`."""
    if not inner.strip():
        raise invalid("a space-delimited pattern names at least one field")
    names, test = _Parser(inner).parse()
    return lambda message: _align(names, split_fields(message), test)
