"""Substitution templates in action parameters ("Substitution templates"): `${expression}`, where
the expression is any SELECT/WHERE expression evaluated against the original message (never
the SELECT's output: aliases are not visible)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsim.localcore.features.rules.sql.compiler import Eval, SqlError, compile_expression
from fleetsim.localcore.features.rules.sql.context import MessageContext
from fleetsim.localcore.features.rules.sql.values import to_string


@dataclass(frozen=True)
class Template:
    parts: tuple[str | Eval, ...]

    def render(self, ctx: MessageContext) -> str:
        return "".join(p if isinstance(p, str) else to_string(p(ctx, ctx.document))
                       for p in self.parts)


def compile_template(text: str) -> Template:
    """Literal text and `${...}` expressions (a `}` inside a quoted string does not close)."""
    parts: list[str | Eval] = []
    i = 0
    while True:
        start = text.find("${", i)
        if start < 0:
            parts.append(text[i:])
            break
        parts.append(text[i:start])
        end = _closing(text, start + 2)
        if end < 0:
            raise SqlError(f"substitution template '{text}' has a '${{' without its '}}'")
        parts.append(compile_expression(text[start + 2:end]))
        i = end + 1
    return Template(tuple(p for p in parts if p != ""))


def _closing(text: str, i: int) -> int:
    quote = None
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "}":
            return i
        i += 1
    return -1
