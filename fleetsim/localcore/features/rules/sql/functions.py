"""The AWS IoT SQL functions local core evaluates ("Functions" in the AWS IoT SQL reference):
name (lower case) -> (arity check, implementation). Implementations take the message context
and the evaluated arguments."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

from fleetsim.localcore.features.rules.sql.context import MessageContext
from fleetsim.localcore.features.rules.sql.values import (
    UNDEFINED,
    Value,
    as_number,
    is_number,
    to_string,
)

Impl = Callable[[MessageContext, list[Value]], Value]


def _topic(ctx: MessageContext, args: list[Value]) -> Value:
    """topic() is the whole topic; topic(n) its n-th level, counted from 1; Undefined past the
    end ("topic(Decimal)")."""
    if not args:
        return ctx.topic
    n = as_number(args[0])
    if not isinstance(n, int) or n < 1:
        return UNDEFINED
    levels = ctx.topic.split("/")
    return levels[n - 1] if n <= len(levels) else UNDEFINED


def _clientid(ctx: MessageContext, args: list[Value]) -> Value:
    """The publisher's client id; "n/a" when there is none (local core's own messages), as AWS
    documents for messages not sent by an MQTT client ("clientid()")."""
    return ctx.client_id or "n/a"


def _principal(ctx: MessageContext, args: list[Value]) -> Value:
    """The publisher's principal: for an X.509 certificate, its id ("principal()"); Undefined
    for messages local core published itself."""
    return ctx.principal if ctx.principal else UNDEFINED


def _timestamp(ctx: MessageContext, args: list[Value]) -> Value:
    """Milliseconds since the epoch, as the rules engine saw the message ("timestamp()")."""
    return ctx.timestamp_ms


def _newuuid(ctx: MessageContext, args: list[Value]) -> Value:
    return str(uuid.uuid4())


def _get(ctx: MessageContext, args: list[Value]) -> Value:
    """get(array, index) or get(object, key) ("get(...)"); Undefined otherwise."""
    container, key = args
    if isinstance(container, list):
        i = as_number(key)
        if isinstance(i, int) and 0 <= i < len(container):
            return container[i]
        return UNDEFINED
    if isinstance(container, dict) and isinstance(key, str):
        return container.get(key, UNDEFINED)
    return UNDEFINED


def _lower(ctx: MessageContext, args: list[Value]) -> Value:
    return args[0].lower() if isinstance(args[0], str) else UNDEFINED


def _upper(ctx: MessageContext, args: list[Value]) -> Value:
    return args[0].upper() if isinstance(args[0], str) else UNDEFINED


def _concat(ctx: MessageContext, args: list[Value]) -> Value:
    if any(a is UNDEFINED for a in args):
        return UNDEFINED
    if all(isinstance(a, list) for a in args):
        return [x for a in args for x in a]
    return "".join(to_string(a) for a in args)


def _abs(ctx: MessageContext, args: list[Value]) -> Value:
    n = as_number(args[0])
    return UNDEFINED if n is None else abs(n)


def _is_undefined(ctx: MessageContext, args: list[Value]) -> Value:
    return args[0] is UNDEFINED


def _is_null(ctx: MessageContext, args: list[Value]) -> Value:
    return args[0] is None


def _encode(ctx: MessageContext, args: list[Value]) -> Value:
    """encode(value, 'base64') ("encode(value, encodingScheme)", 2016-03-23): `*` is the raw
    payload; any other value its string form."""
    value, scheme = args
    if scheme != "base64":
        return UNDEFINED
    if value is UNDEFINED:
        return UNDEFINED
    raw = value if isinstance(value, bytes) else to_string(value).encode()
    return base64.b64encode(raw).decode()


def _number_check(ctx: MessageContext, args: list[Value]) -> Value:
    return is_number(args[0])


# name -> (smallest arity, largest arity, implementation)
FUNCTIONS: dict[str, tuple[int, int, Impl]] = {
    "topic": (0, 1, _topic),
    "clientid": (0, 0, _clientid),
    "principal": (0, 0, _principal),
    "timestamp": (0, 0, _timestamp),
    "newuuid": (0, 0, _newuuid),
    "get": (2, 2, _get),
    "lower": (1, 1, _lower),
    "upper": (1, 1, _upper),
    "concat": (2, 255, _concat),
    "abs": (1, 1, _abs),
    "isundefined": (1, 1, _is_undefined),
    "isnull": (1, 1, _is_null),
    "isnumber": (1, 1, _number_check),
    "encode": (2, 2, _encode),
}

# Functions of 2016-03-23 only ("SQL versions": encode was added then).
SINCE_2016 = frozenset({"encode"})

