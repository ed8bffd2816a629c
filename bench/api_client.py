"""A lean AWS IoT API client: aiohttp with keep-alive sending the requests botocore would send
(same method, URI, JSON body, SigV4-shaped headers; local core does not verify signatures), so
that a load measures the server rather than botocore's ~1 ms of CPU per call."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

SIGV4 = ("AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/iot/aws4_request, "
         "SignedHeaders=content-type;host;x-amz-date, Signature=0")
# iot-data (shadows) is told apart from iot by the service in the credential scope alone.
IOT_DATA_SIGV4 = SIGV4.replace("/iot/", "/iotdata/")
HEADERS = {"Authorization": SIGV4, "X-Amz-Date": "20260101T000000Z",
           "Content-Type": "application/json", "User-Agent": "fleetsim-bench"}


class ApiError(RuntimeError):
    pass


@dataclass
class ApiClient:
    base_url: str
    concurrency: int = 32
    session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def __aenter__(self) -> ApiClient:
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=False)
        self.session = aiohttp.ClientSession(self.base_url, connector=connector, headers=HEADERS,
                                             skip_auto_headers=("Accept-Encoding",))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   expect: int = 200, authorization: str = SIGV4) -> dict[str, Any]:
        assert self.session is not None
        data = json.dumps(body).encode() if body is not None else b""
        headers = None if authorization is SIGV4 else {"Authorization": authorization}
        async with self.session.request(method, path, data=data, headers=headers) as response:
            payload = await response.read()
            if response.status != expect:
                raise ApiError(f"{method} {path}: HTTP {response.status} "
                               f"{response.headers.get('x-amzn-ErrorType', '')} {payload[:200]!r}")
        return json.loads(payload) if payload else {}

    # --- the operations the benchmarks use ---------------------------------------------------

    async def create_thing(self, name: str) -> dict[str, Any]:
        return await self.call("POST", f"/things/{name}", {})

    async def create_keys_and_certificate(self) -> dict[str, Any]:
        return await self.call("POST", "/keys-and-certificate?setAsActive=true")

    async def create_certificate_from_csr(self, csr_pem: str) -> dict[str, Any]:
        return await self.call("POST", "/certificates?setAsActive=true",
                                {"certificateSigningRequest": csr_pem})

    async def create_policy(self, name: str, document: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", f"/policies/{name}",
                               {"policyDocument": json.dumps(document)})

    async def attach_policy(self, name: str, target: str) -> None:
        await self.call("PUT", f"/target-policies/{name}", {"target": target})

    async def get_thing_shadow(self, thing: str) -> dict[str, Any]:
        return await self.call("GET", f"/things/{thing}/shadow", authorization=IOT_DATA_SIGV4)

    async def update_thing_shadow(self, thing: str, document: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", f"/things/{thing}/shadow", document,
                               authorization=IOT_DATA_SIGV4)


@dataclass
class RateResult:
    """Completed calls over wall-clock time, with the call latencies (seconds)."""

    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else 0.0

        return {"count": self.count, "seconds": round(self.seconds, 3),
                "per_second": round(self.rate, 1), "latency_ms": {
                    "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)}}


async def run_closed_loop(work: Iterator[Callable[[], Awaitable[Any]]], concurrency: int,
                          duration: float) -> RateResult:
    """`concurrency` workers take calls from `work` until it is exhausted or `duration` passes."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        for call in work:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)
            if t0 > deadline:
                return

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return RateResult(len(latencies), time.perf_counter() - start, latencies)
