"""Clean-up under throttling, over real sockets: local core has no rate limit, so a test double
(an HTTP proxy on 127.0.0.1 in front of a real local core) answers DeleteThing with
ThrottlingException (HTTP 400, as AWS IoT does) and TooManyRequestsException (HTTP 429), and
one thing's delete with AccessDeniedException. The client's own retries are off (botocore's
back-off alone takes ~25 s to give up), so each throttled answer reaches clean-up, which backs
off and removes the throttled things, and reports the refused one by kind, name and error;
nothing is abandoned silently."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import aiohttp
import pytest
from aiohttp import web
from botocore.config import Config

from fleetsim.control.cleanup import cleanup
from fleetsim.control.clients import LOCAL_CREDENTIALS, AwsClients
from fleetsim.control.journal import Entry
from fleetsim.engine.steps import JOURNAL_KINDS
from fleetsim.localcore.launcher import RunningLocalCore

pytestmark = pytest.mark.timeout(180)
DELETE_THING = re.compile(r"^/things/([^/]+)$")
THROTTLED_ANSWERS = 4  # per thing: 3 ThrottlingException, 1 TooManyRequestsException
REFUSED = "thr-refused"


@dataclasses.dataclass
class Throttler:
    upstream: str
    throttled: dict[str, int] = dataclasses.field(default_factory=dict)  # thing -> answers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        m = DELETE_THING.match(request.path)
        if request.method == "DELETE" and m:
            thing = m.group(1)
            if thing == REFUSED:
                return _error(403, "AccessDeniedException", "not allowed")
            served = self.throttled.get(thing, 0)
            if served < THROTTLED_ANSWERS:
                self.throttled[thing] = served + 1
                if served % 4 == 3:
                    return _error(429, "TooManyRequestsException", "Too Many Requests")
                return _error(400, "ThrottlingException", "Rate exceeded")
        async with aiohttp.ClientSession(auto_decompress=False) as http, http.request(
                request.method, self.upstream + request.path_qs, data=await request.read(),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as answer:
            body = await answer.read()
            headers = {k: v for k, v in answer.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding",
                                            "connection")}
            return web.Response(status=answer.status, body=body, headers=headers)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode(),
                        headers={"x-amzn-ErrorType": code, "Content-Type": "application/json"})


@pytest.fixture
async def proxy(core: RunningLocalCore) -> AsyncIterator[tuple[str, Throttler]]:
    throttler = Throttler(core.api_url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", throttler.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", throttler
    finally:
        await runner.cleanup()


async def test_throttled_deletes_are_retried_and_a_refused_one_is_reported(
        core: RunningLocalCore, iot: Any, proxy: tuple[str, Throttler]) -> None:
    url, throttler = proxy
    names = ["thr-a", "thr-b", REFUSED]
    for name in names:
        iot.create_thing(thingName=name)
    session = aioboto3.Session()
    async with session.client("iot", endpoint_url=url, region_name="us-east-1",
                              config=Config(retries={"max_attempts": 1}),
                              **LOCAL_CREDENTIALS) as client:
        report = await cleanup(AwsClients(client, None, None),
                               [Entry("thing", {"name": n}) for n in names], JOURNAL_KINDS)
    assert throttler.throttled == {"thr-a": THROTTLED_ANSWERS, "thr-b": THROTTLED_ANSWERS}
    assert report.removed == {"thing": 2}
    assert report.failed == [f"thing {REFUSED}: AccessDeniedException: not allowed"]
    assert not report.ok
    left = {t["thingName"] for t in iot.list_things()["things"]}
    assert "thr-a" not in left and "thr-b" not in left and REFUSED in left
