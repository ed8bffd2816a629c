"""Reading a request body under a size cap, checked while it streams in: a client announcing or
sending more than the cap is answered 413 after at most `limit` bytes were held in memory (not
after the whole body was read, as `request.read()` with a large `client_max_size` would)."""

from __future__ import annotations

from aiohttp import web

from fleetsim.localcore.errors import AwsError

# The largest request body a rest-json service of local core accepts. AWS IoT's own limits are
# far below it: 128 KB for a Publish payload, 8 KB for a shadow document, 32 KB for a job
# document ("AWS IoT Core endpoints and quotas").
MAX_BODY_BYTES = 1024 * 1024


def too_large(limit: int) -> AwsError:
    # iot-data's model names the error for this case: RequestEntityTooLargeException, HTTP 413.
    return AwsError("RequestEntityTooLargeException",
                    f"Request must be smaller than {limit} bytes", status=413)


_BODY = web.RequestKey("fleetsim.body", bytes)  # a body read once, for later readers


async def read_capped(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body; AwsError 413 as soon as it is known to exceed `limit` bytes. May be
    called again for the same request (the SigV4 check reads it before the service does)."""
    if _BODY in request:
        return request[_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    body = bytearray()
    while True:
        chunk = await request.content.readany()
        if not chunk:
            request[_BODY] = bytes(body)
            return request[_BODY]
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
