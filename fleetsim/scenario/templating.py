"""Templates in scenario strings: `{thing_name}`, `{index:04d}`, `{now}`, `{rand_int(1, 9)}`.

A template is compiled once (errors name the bad placeholder) and rendered per device or per
message. A string that is exactly one placeholder renders to the value itself, so
`temperature: "{rand_float(18, 25, 1)}"` gives a JSON number, not a string.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class TemplateError(ValueError):
    pass


def _now(_: Mapping[str, Any]) -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


# Values that need no arguments and are computed at render time.
_DYNAMIC: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "now": _now,
    "date": lambda _: time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime()),
    "timestamp": lambda _: int(time.time()),
    "timestamp_ms": lambda _: int(time.time() * 1000),
}


def _rand_int(lo: float, hi: float) -> int:
    return random.randint(int(lo), int(hi))


def _rand_float(lo: float, hi: float, digits: float = 2) -> float:
    return round(random.uniform(lo, hi), int(digits))


def _choice(*options: Any) -> Any:
    return random.choice(options)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "rand_int": _rand_int,
    "rand_float": _rand_float,
    "choice": _choice,
}

# `${...}` is an IoT policy variable (`${iot:ClientId}`), left for AWS IoT to resolve.
_PLACEHOLDER = re.compile(r"\$\{[^{}]*\}|\{\{|\}\}|\{([^{}]*)\}")
_CALL = re.compile(r"^\s*([a-z_]+)\((.*)\)\s*$")
_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::(.*))?$")


def _parse_args(text: str, where: str) -> list[Any]:
    args: list[Any] = []
    for raw in filter(None, (a.strip() for a in text.split(","))):
        if raw[0] in "'\"" and raw[-1] == raw[0]:
            args.append(raw[1:-1])
            continue
        try:
            args.append(float(raw) if "." in raw else int(raw))
        except ValueError as e:
            raise TemplateError(f"{where}: argument {raw!r} is neither a number nor a quoted "
                                "string") from e
    return args


@dataclass(frozen=True)
class _Part:
    literal: str | None = None
    name: str | None = None
    fmt: str = ""
    func: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()

    def value(self, ctx: Mapping[str, Any]) -> Any:
        if self.literal is not None:
            return self.literal
        if self.func is not None:
            return self.func(*self.args)
        assert self.name is not None
        if self.name in ctx:
            return ctx[self.name]
        return _DYNAMIC[self.name](ctx)


class Template:
    def __init__(self, text: str, names: set[str]):
        """`names` are the context variables allowed here (besides the dynamic ones)."""
        self.text = text
        self.parts: list[_Part] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            if m.start() > pos:
                self.parts.append(_Part(literal=text[pos:m.start()]))
            pos = m.end()
            if m.group(0) in ("{{", "}}"):
                self.parts.append(_Part(literal=m.group(0)[0]))
                continue
            if m.group(0).startswith("$"):
                self.parts.append(_Part(literal=m.group(0)))
                continue
            self.parts.append(self._compile(m.group(1), names))
        if pos < len(text):
            self.parts.append(_Part(literal=text[pos:]))
        self.single = len(self.parts) == 1 and self.parts[0].literal is None

    def _compile(self, expr: str, names: set[str]) -> _Part:
        where = f"placeholder {{{expr}}}"
        call = _CALL.match(expr)
        if call:
            func = _FUNCTIONS.get(call.group(1))
            if func is None:
                raise TemplateError(f"{where}: unknown function {call.group(1)!r}; known: "
                                    + ", ".join(sorted(_FUNCTIONS)))
            args = tuple(_parse_args(call.group(2), where))
            try:
                func(*args)
            except TypeError as e:
                raise TemplateError(f"{where}: wrong arguments ({e})") from e
            return _Part(func=func, args=args)
        m = _NAME.match(expr)
        if not m:
            raise TemplateError(f"{where} is not a name or a function call")
        name, fmt = m.group(1), m.group(2) or ""
        if name not in names and name not in _DYNAMIC:
            known = sorted(names | set(_DYNAMIC))
            raise TemplateError(f"unknown {where}; known names: {', '.join(known)}")
        return _Part(name=name, fmt=fmt)

    def render(self, ctx: Mapping[str, Any]) -> Any:
        if self.single:
            part = self.parts[0]
            value = part.value(ctx)
            return format(value, part.fmt) if part.fmt else value
        out = []
        for part in self.parts:
            value = part.value(ctx)
            out.append(format(value, part.fmt) if part.fmt else str(value))
        return "".join(out)

    @property
    def names(self) -> set[str]:
        return {p.name for p in self.parts if p.name}


class StructTemplate:
    """A JSON-like value (dicts, lists, strings, numbers) whose strings are templates."""

    def __init__(self, value: Any, names: set[str]):
        self._render = self._compile(value, names)

    def _compile(self, value: Any, names: set[str]) -> Callable[[Mapping[str, Any]], Any]:
        if isinstance(value, str):
            if "{" not in value and "}" not in value:
                return lambda _ctx: value
            return Template(value, names).render
        if isinstance(value, dict):
            items = [(k, self._compile(v, names)) for k, v in value.items()]
            return lambda ctx: {k: f(ctx) for k, f in items}
        if isinstance(value, list):
            fs = [self._compile(v, names) for v in value]
            return lambda ctx: [f(ctx) for f in fs]
        return lambda _ctx: value

    def render(self, ctx: Mapping[str, Any]) -> Any:
        return self._render(ctx)
