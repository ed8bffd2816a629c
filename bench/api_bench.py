"""API parts of the local core benchmark: create-thing/s (lean client and aioboto3) and
create-keys-and-certificate/s, with server CPU per request."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from bench.api_client import ApiClient, RateResult, run_closed_loop
from bench.system import cpu_seconds, system_busy_seconds


def _with_server_cpu(result: RateResult, server_cpu_s: float) -> dict[str, Any]:
    out = result.summary()
    out["server_cpu_s"] = round(server_cpu_s, 3)
    out["server_cpu_ms_per_request"] = (round(1000 * server_cpu_s / result.count, 3)
                                        if result.count else None)
    out["server_utilisation"] = round(server_cpu_s / result.seconds, 3) if result.seconds else 0
    return out


async def _measure(server_pid: int, work: Iterator[Callable[[], Awaitable[Any]]],
                   concurrency: int, duration: float) -> dict[str, Any]:
    client0, busy0 = time.process_time(), system_busy_seconds()
    cpu0 = cpu_seconds(server_pid)
    result = await run_closed_loop(work, concurrency, duration)
    server_cpu = cpu_seconds(server_pid) - cpu0
    out = _with_server_cpu(result, server_cpu)
    client_cpu = time.process_time() - client0
    out["other_cpu_s"] = round(max(0.0, system_busy_seconds() - busy0 - server_cpu - client_cpu),
                               3)
    out["client_cpu_ms_per_request"] = (round(1000 * client_cpu / result.count, 3)
                                        if result.count else None)
    out["concurrency"] = concurrency
    return out


async def create_things_lean(api_url: str, server_pid: int, concurrency: int, duration: float,
                             max_count: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    async with ApiClient(api_url, concurrency) as api:
        await api.create_thing(f"bench-warmup-{run}")
        names = (f"bench-{run}-{i}" for i in range(max_count))
        work = (lambda name=name: api.create_thing(name) for name in names)
        out = await _measure(server_pid, work, concurrency, duration)
    out["client"] = "aiohttp keep-alive, botocore-shaped requests"
    return out


async def create_things_boto(api_url: str, server_pid: int, concurrency: int, duration: float,
                             max_count: int) -> dict[str, Any]:
    import aioboto3
    from botocore.config import Config

    session = aioboto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                               region_name="us-east-1")
    config = Config(max_pool_connections=concurrency, retries={"max_attempts": 1})
    run = uuid.uuid4().hex[:8]
    async with session.client("iot", endpoint_url=api_url, config=config) as iot:
        await iot.create_thing(thingName=f"bench-boto-warmup-{run}")
        names = (f"bench-boto-{run}-{i}" for i in range(max_count))
        work = (lambda name=name: iot.create_thing(thingName=name) for name in names)
        out = await _measure(server_pid, work, concurrency, duration)
    out["client"] = "aioboto3"
    return out


async def create_keys_and_certificates(api_url: str, server_pid: int, concurrency: int,
                                       duration: float, max_count: int) -> dict[str, Any]:
    async with ApiClient(api_url, concurrency) as api:
        first = await api.create_keys_and_certificate()
        key_type = key_type_of(first["keyPair"]["PrivateKey"])
        work = (api.create_keys_and_certificate for _ in itertools.repeat(None, max_count))
        out = await _measure(server_pid, work, concurrency, duration)
    out["key_type"] = key_type
    out["key_type_setting"] = "--keys-and-certificate-key-type ec-p256"
    return out


def key_type_of(private_key_pem: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_key_pem.encode(), None)
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC-{key.curve.name}"
    return type(key).__name__
