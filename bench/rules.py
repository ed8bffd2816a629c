"""`python -m bench rules`: messages per second through local core's broker with 0, 1, 10 and
100 topic rules on the published topic, and local core's CPU per rule evaluation.

Local core runs in its own process (pinned to CPU 0); one device in this process (CPU 1)
publishes `--rules-messages` QoS 0 messages to `bench/in` back to back. With N rules, N - 1
rules match the topic and evaluate a WHERE clause that is false for every message (the
evaluation is measured, not an action), and one sentinel rule republishes only the last
message (v = -1) to `bench/done`, which the device subscribes to: the bus evaluates in order,
so the sentinel arriving means every message went through every rule. The sentinel rule reads
`bench/in` only: with `bench/+` it matched its own republished message and fed itself forever
(as it would on AWS), which is why this bench used to time out whenever a rule existed.
Without rules the last message goes to `bench/done` directly. CPU per rule evaluation =
(local core's CPU with N rules - without rules) / (messages x N).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.api_client import ApiClient
from bench.core_process import CoreProcess, measure_on_core
from bench.devices import provision
from bench.mqtt_client import KEEPALIVE_S, client_context
from bench.report import Row
from bench.shadows import ShadowDevice
from bench.system import CpuWindow
from fleetsim.localcore.broker import codec

RULE_COUNTS = (0, 1, 10, 100)
ROLE = "arn:aws:iam::123456789012:role/bench"


def _rule(sql: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"sql": sql, "actions": actions, "awsIotSqlVersion": "2016-03-23"}


async def _set_rules(api: ApiClient, count: int, existing: int) -> None:
    for i in range(existing):
        await api.call("DELETE", f"/rules/bench_{i}")
    for i in range(count - 1):
        await api.call("POST", f"/rules/bench_{i + 1}", _rule(
            "SELECT temp, topic(2) AS t FROM 'bench/+' WHERE temp > 1000 AND kind = 'x'", []))
    if count:
        await api.call("POST", "/rules/bench_0", _rule(
            "SELECT * FROM 'bench/in' WHERE v = -1",
            [{"republish": {"roleArn": ROLE, "topic": "bench/done"}}]))


async def _measure(args: argparse.Namespace, core: CoreProcess) -> dict[str, Any]:
    messages = args.rules_messages
    if getattr(args, "quick", False):
        messages = min(messages, 2000)
    done: asyncio.Event = asyncio.Event()

    def on_message(device: ShadowDevice, topic: str, payload: bytes) -> None:
        if topic == "bench/done":
            done.set()

    results: dict[str, Any] = {"messages": messages, "by_rules": {}}
    async with ApiClient(core.api_url, concurrency=4) as api:
        files = (await provision(api, 1, core.workdir / "devices", prefix="rules-dev",
                                 server_pid=core.pid)).devices[0]
        loop = asyncio.get_running_loop()
        _, device = await loop.create_connection(
            lambda: ShadowDevice(files.name, on_message), "127.0.0.1", core.mqtt_port,
            ssl=client_context(core.root_ca, files.cert_path, files.key_path),
            server_hostname="127.0.0.1")
        assert device.transport is not None
        device.transport.write(codec.encode_connect(files.name, KEEPALIVE_S))
        if await asyncio.wait_for(device.connack, 30) != 0:
            raise ConnectionError("CONNACK refused")
        device.transport.write(codec.encode_subscribe(1, [("bench/done", 0)]))
        await asyncio.wait_for(device.suback, 30)
        topic_in = codec.encode_topic("bench/in")
        body = json.dumps({"temp": 21.5, "kind": "y", "v": 1}).encode()
        existing = 0
        baseline_cpu = None
        for count in RULE_COUNTS:
            await _set_rules(api, count, existing)
            existing = count
            await asyncio.sleep(0.5)
            done.clear()
            window = CpuWindow(core.pid)
            start = time.perf_counter()
            window.start(start)
            frame = codec.publish(topic_in, body)
            for i in range(messages - 1):
                device.transport.write(frame)
                if i % 500 == 499:
                    await asyncio.sleep(0)
            last_topic = codec.encode_topic("bench/in" if count else "bench/done")
            device.transport.write(codec.publish(last_topic, b'{"v": -1}'))
            # Generous: on a shared machine 100 rules x 20,000 messages took 48 s.
            await asyncio.wait_for(done.wait(), 60 + messages * (count + 1) * 100e-6)
            window.stop(time.perf_counter())
            entry: dict[str, Any] = {
                "seconds": round(window.wall, 3),
                "messages_per_second": round(messages / window.wall, 1),
                "server_cpu_s": round(window.cpu, 3)}
            if count == 0:
                baseline_cpu = window.cpu
            elif baseline_cpu is not None:
                entry["cpu_us_per_rule_evaluation"] = round(
                    max(window.cpu - baseline_cpu, 0.0) / (messages * count) * 1e6, 2)
            results["by_rules"][str(count)] = entry
        device.close()
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules-messages", type=int, default=20000, metavar="N",
                        help="rules bench: messages published per rule count (default 20000)")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    data = measure_on_core("rules", lambda core: _measure(args, core))
    return data, _rows(data)


def _rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for count, entry in data.get("by_rules", {}).items():
        rows.append(Row(f"{count} rules: messages through the broker", entry["messages_per_second"],
                        "/s"))
        if "cpu_us_per_rule_evaluation" in entry:
            rows.append(Row(f"{count} rules: server CPU per rule evaluation",
                            entry["cpu_us_per_rule_evaluation"], "us"))
    return rows
