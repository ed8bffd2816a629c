"""What a Lambda function logged about one subject (a certificate id, a thing name): the error
of the invocation that handled it, read back from the function's log group as a user does it
(`aws logs filter-log-events --log-group-name /aws/lambda/<name>`).

Lambda writes each invocation between `START RequestId: <id>` and `END RequestId: <id>` in one
log stream; the Python runtime's logging lines carry the request id (`[INFO]\\t<time>\\t<id>\\t
<message>`), an unhandled exception is a line `[ERROR] <type>: <message>` and a time-out a line
`... Task timed out after N seconds` ("Using CloudWatch Logs with Lambda", "AWS Lambda function
logging in Python"). So: the events that mention the subject give the request and its stream;
that stream from there to the request's END gives the error, if any."""

from __future__ import annotations

from typing import Any

from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call

_PAGES = 5  # of the invocation's stream read at most (an invocation logging a great deal)


def log_group(function: str) -> str:
    return f"/aws/lambda/{function}"


async def _filter(ctx: RunContext, **params: Any) -> dict[str, Any] | None:
    try:
        return await api_call(ctx, "FilterLogEvents", params["logGroupName"], client=ctx.logs,
                              expected=frozenset({"ResourceNotFoundException"}), **params)
    except ApiError as e:
        if e.code == "ResourceNotFoundException":  # the function has logged nothing yet
            return None
        raise


def _error_of(message: str) -> str | None:
    if message.startswith("[ERROR]"):
        return message[len("[ERROR]"):].split("\r")[0].split("\n")[0].strip()
    if "Task timed out after" in message:
        return message[message.index("Task timed out"):].strip()
    return None


async def invocation_error(ctx: RunContext, function: str, subject: str, since_ms: int
                           ) -> str | None:
    """The error of the latest invocation of `function` since `since_ms` (epoch ms) whose log
    mentions `subject`, as one line; None if none failed (or none logged it yet)."""
    group = log_group(function)
    found = await _filter(ctx, logGroupName=group, filterPattern=f'"{subject}"',
                          startTime=since_ms)
    mentions = [(e["timestamp"], e["logStreamName"], e["eventId"])
                for e in (found or {}).get("events", [])]
    if not mentions:
        return None
    at, stream, event_id = max(mentions)
    token: str | None = None
    seen = False
    for _ in range(_PAGES):
        page = await _filter(ctx, logGroupName=group, logStreamNames=[stream], startTime=at,
                             **({"nextToken": token} if token else {}))
        for event in (page or {}).get("events", []):
            seen = seen or event["eventId"] == event_id
            if not seen:
                continue  # logged before the mention, in the same millisecond
            message = event["message"]
            error = _error_of(message)
            if error is not None:
                return f"{error} (in {group}, log stream {stream})"
            if message.startswith("END RequestId:"):
                return None
        token = (page or {}).get("nextToken")
        if not token:
            return None
    return None
