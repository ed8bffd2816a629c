"""Positions in a log stream or group, as the opaque tokens of GetLogEvents
(`nextForwardToken` `f/...`, `nextBackwardToken` `b/...`) and FilterLogEvents (`nextToken`).
A position is the (timestamp, id) of an event: a forward token reads after it, a backward
token before it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGITS = 20
_TOKEN = re.compile(rf"([fb])/(\d{{{_DIGITS}}})(\d{{{_DIGITS}}})")
HEAD = (-1, -1)             # before every event
TAIL = (2**62, 2**62)       # after every event


class BadToken(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    forward: bool
    position: tuple[int, int]

    def token(self) -> str:
        ts, event_id = (max(v, 0) for v in self.position)
        return f"{'f' if self.forward else 'b'}/{ts:0{_DIGITS}d}{event_id:0{_DIGITS}d}"


def parse(token: str) -> Cursor:
    m = _TOKEN.fullmatch(token)
    if m is None:
        raise BadToken("The specified nextToken is not valid.")
    position = (int(m.group(2)), int(m.group(3)))
    return Cursor(m.group(1) == "f", position)


def filter_token(position: tuple[int, int]) -> str:
    return Cursor(True, position).token()[2:]


def parse_filter_token(token: str) -> tuple[int, int]:
    return parse("f/" + token).position
