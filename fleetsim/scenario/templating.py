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


# A sample of each value, to check a `{name:format}` when the template is compiled.
_SAMPLES: dict[str, Any] = {
    "fleet": "f", "prefix": "p", "thing_name": "t", "client_id": "c", "index": 1, "seq": 1,
    "now": "2020-01-01T00:00:00.000+00:00", "date": "Wed Jan 01 00:00:00 UTC 2020",
    "timestamp": 1, "timestamp_ms": 1,
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_rand_int(args: tuple[Any, ...]) -> str | None:
    if len(args) != 2 or not all(isinstance(a, int) for a in args):
        return "takes two whole numbers"
    if args[0] > args[1]:
        return f"its low {args[0]} is above its high {args[1]}"
    return None


def _check_rand_float(args: tuple[Any, ...]) -> str | None:
    if len(args) not in (2, 3) or not all(_number(a) for a in args):
        return "takes two or three numbers"
    if args[0] > args[1]:
        return f"its low {args[0]} is above its high {args[1]}"
    if len(args) == 3 and not (isinstance(args[2], int) and 0 <= args[2] <= 15):
        return "its digits must be a whole number from 0 to 15"
    return None


def _check_choice(args: tuple[Any, ...]) -> str | None:
    return None if args else "needs at least one option"


@dataclass(frozen=True)
class _Function:
    usage: str  # as a scenario writes it
    call: Callable[..., Any]
    check: Callable[[tuple[Any, ...]], str | None]  # what is wrong with these arguments


_FUNCTIONS: dict[str, _Function] = {
    "rand_int": _Function("rand_int(low, high)",
                          lambda lo, hi: random.randint(lo, hi), _check_rand_int),
    "rand_float": _Function("rand_float(low, high[, digits])",
                            lambda lo, hi, digits=2: round(random.uniform(lo, hi), digits),
                            _check_rand_float),
    "choice": _Function("choice(option, ...)", lambda *options: random.choice(options),
                        _check_choice),
}
_USAGES = ", ".join(f.usage for _, f in sorted(_FUNCTIONS.items()))

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


def _check_format(where: str, name: str, fmt: str) -> None:
    """`fmt` must format `name`'s values: `{index:04d}` does, `{index:xyz}` does not."""
    samples = [_SAMPLES[name]] if name in _SAMPLES else [1, "x"]
    for sample in samples:
        try:
            format(sample, fmt)
            return
        except (ValueError, TypeError):
            continue
    kind = "a number" if isinstance(samples[0], int) else "text"
    raise TemplateError(f"{where}: {fmt!r} is not a format for {name} ({kind}); write e.g. "
                        + ("{" + name + ":04d}" if kind == "a number" else "{" + name + ":>10}"))


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
        known = f"known names: {', '.join(sorted(names | set(_DYNAMIC)))}; functions: {_USAGES}"
        call = _CALL.match(expr)
        if call:
            func = _FUNCTIONS.get(call.group(1))
            if func is None:
                raise TemplateError(f"{where}: unknown function {call.group(1)!r}; {known}")
            args = tuple(_parse_args(call.group(2), where))
            wrong = func.check(args)
            if wrong is not None:
                raise TemplateError(f"{where}: wrong arguments: {func.usage} {wrong}")
            return _Part(func=func.call, args=args)
        m = _NAME.match(expr)
        if not m:
            raise TemplateError(f"{where} is not a name or a function call; {known}")
        name, fmt = m.group(1), m.group(2) or ""
        if name not in names and name not in _DYNAMIC:
            raise TemplateError(f"unknown {where}; {known}")
        if fmt:
            _check_format(where, name, fmt)
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

    @property
    def constant(self) -> bool:
        """No placeholder (or only escapes): renders to the same text whatever the context."""
        return all(p.literal is not None for p in self.parts)


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
