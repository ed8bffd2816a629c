"""The workshop's own commands (`mosquitto_pub` / `mosquitto_sub`) against the broker."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from fleetsim.localcore.principal import ThingInfo
from tests.mqtt_testing import (
    ACCOUNT_ID,
    REGION,
    Device,
    Env,
)

ARN = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"
pytestmark = [
    pytest.mark.interop,
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto clients missing"),
]
SMART_BUILDING = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": [f"{ARN}:client/${{iot:ClientId}}"]},
    {"Effect": "Allow", "Action": ["iot:Publish"],
     "Resource": [f"{ARN}:topic/telemetry/building/one/${{iot:ClientId}}"]}]}


def tls_args(device: Device, port: int, client_id: str) -> list[str]:
    return ["--cafile", str(device.root_ca), "--cert", str(device.cert_path),
            "--key", str(device.key_path), "-h", "127.0.0.1", "-p", str(port),
            "-i", client_id, "--tls-version", "tlsv1.2"]


async def run(*argv: str, timeout: float = 15) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def start_sub(device: Device, port: int, topic: str, count: int) -> asyncio.Task:
    task = asyncio.create_task(run("mosquitto_sub", *tls_args(device, port, "watcher"),
                                   "-q", "1", "-t", topic, "-C", str(count), "-W", "8", "-v"))
    await asyncio.sleep(0.8)  # let it subscribe
    return task


async def test_workshop_publish_reaches_mosquitto_sub(env: Env):
    thing, watcher, port = env.device("my-first-thing"), env.device("watcher"), env.port
    sub = await start_sub(watcher, port, "iot/ws", 1)
    code, out = await run("mosquitto_pub", *tls_args(thing, port, thing.name), "-q", "0",
                          "-t", "iot/ws", "-m", '{"prov": "first"}', "-d")
    assert code == 0, out
    assert "CONNACK" in out
    code, out = await sub
    assert code == 0, out
    assert out.strip() == 'iot/ws {"prov": "first"}'


async def test_workshop_group_policy_allows_own_topic_only(env: Env):
    member = env.device("group-member", policies=(SMART_BUILDING,),
                        things=(ThingInfo("group-member"),))
    watcher, port = env.device("watcher"), env.port
    sub = await start_sub(watcher, port, "telemetry/building/one/#", 2)
    for suffix, payload in (("_foo", "denied"), ("", "allowed"), ("_foo", "denied again")):
        await run("mosquitto_pub", *tls_args(member, port, member.name), "-q", "1",
                  "-t", f"telemetry/building/one/group-member{suffix}", "-m", payload)
    _, out = await sub
    # -C 2 cannot be satisfied: only the allowed message arrives, then -W ends the wait.
    lines = [line for line in out.strip().splitlines() if line != "Timed out"]
    assert lines == ["telemetry/building/one/group-member allowed"], out


async def test_unregistered_certificate_cannot_publish(env: Env):
    ghost = env.device("ghost", register=False)
    code, out = await run("mosquitto_pub", *tls_args(ghost, env.port, "ghost"), "-q", "1",
                          "-t", "iot/ws", "-m", "x")
    assert code != 0, out
    assert not env.broker.clients
