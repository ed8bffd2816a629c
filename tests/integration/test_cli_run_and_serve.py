"""`fleetsim run` and `fleetsim local serve` as a user starts them: the run's port options
reach the local core it starts, its summary states connects/s and msgs/s, its progress line
counts devices only, its files are private; `local serve` logs what the README promises."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetsim.device import DeviceError, DeviceIdentity, DeviceSession
from fleetsim.target import Target
from tests.helpers import aws_client

FLEETSIM = str(Path(sys.executable).parent / "fleetsim")  # the console script users run

SCENARIO = """\
name: rates
fleets: [{name: s, prefix: rate-dev, count: 2}]
steps:
  - create_policy:
      policy: rates-policy
      document:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Action: "iot:*", Resource: "*"}]
  - observe: {topics: ["r/+"]}
  - provision: {fleet: s, policy: rates-policy}
  - connect: s
  - telemetry: {fleet: s, topic: "r/{thing_name}", payload: {v: 1}, rate: 1/s, duration: 13s}
  - disconnect: s
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_starts_local_core_on_its_ports_and_states_rates(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETSIM_LOCAL_")}
    out = subprocess.run([FLEETSIM, "run", "s.yaml", "--api-port", "0", "--mqtt-port", "0",
                          "--json", "s.json"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=240, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(started for this run)" in out.stdout
    # Any free port, as asked, rather than the defaults 4510 and 8883.
    first = out.stdout.splitlines()[0]
    assert ":4510," not in first and ":8883 " not in first, first
    # Progress: the observer is connected too, but it is not one of the 2 devices.
    counts = [int(line.split("connected ")[1].split()[0])
              for line in out.stderr.splitlines() if "] connected " in line]
    assert 2 in counts and max(counts) == 2, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    rates = summary["throughput"]
    assert rates["connects"]["total"] == 3  # the devices and the observer
    assert rates["msgs_sent"]["total"] > 0 and rates["msgs_sent"]["mean_per_s"] > 0
    assert rates["msgs_received"]["total"] == rates["msgs_sent"]["total"]
    table = out.stdout[out.stdout.index("Throughput"):].splitlines()
    assert table[1].split() == ["rate", "mean", "peak", "total", "over"]
    for row, (label, key) in zip(table[2:5], [("connects/s", "connects"),
                                              ("msgs sent/s", "msgs_sent"),
                                              ("msgs received/s", "msgs_received")],
                                 strict=True):
        assert row.strip().startswith(label), row
        figures = row.strip()[len(label):].split()
        assert figures[:3] == [f"{rates[key]['mean_per_s']:.1f}",
                               str(rates[key]["peak_per_s"]), str(rates[key]["total"])], row
    # Private files: the directories 0700; the database, the log and the journal 0600.
    state = tmp_path / ".fleetsim"
    assert mode(state) == 0o700 and mode(state / "localcore") == 0o700
    db = state / "localcore" / "state.db"
    for path in (db, db.with_name("state.db-wal"), db.with_name("state.db-shm"),
                 state / "localcore" / "localcore.log", *state.glob("runs/*/journal*.jsonl")):
        if path.exists() or path.suffix in (".db", ".log"):
            assert mode(path) == 0o600, path
    assert list(state.glob("runs/*/journal*.jsonl"))


def identity_of(created: dict, name: str) -> DeviceIdentity:
    return DeviceIdentity("t", 0, name, "rsa-2048", created["keyPair"]["PrivateKey"].encode()
                          ).with_certificate(created["certificatePem"])


async def provoke(target: Target, api_url: str) -> None:
    """One refused connection (an INACTIVE certificate) and one denied publish."""
    iot = aws_client(api_url)
    iot.create_policy(policyName="connect-only", policyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
    inactive = iot.create_keys_and_certificate(setAsActive=False)
    iot.attach_policy(policyName="connect-only", target=inactive["certificateArn"])
    with pytest.raises(DeviceError):
        async with DeviceSession(identity_of(inactive, "stranger"), target):
            pass
    created = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="connect-only", target=created["certificateArn"])
    async with DeviceSession(identity_of(created, "denied-publisher"), target) as session:
        with pytest.raises(DeviceError):
            await session.publish("not/allowed", b"x", qos=1)


def test_local_serve_logs_refusals_at_its_default_level(tmp_path: Path) -> None:
    # The command exactly as the README writes it; free ports through the variables.
    env = {**os.environ, "FLEETSIM_LOCAL_API_PORT": "0", "FLEETSIM_LOCAL_MQTT_PORT": "0"}
    env.pop("FLEETSIM_LOCAL_LOG_LEVEL", None)
    proc = subprocess.Popen([FLEETSIM, "local", "serve"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info_file = tmp_path / ".fleetsim" / "localcore" / "localcore.json"
        deadline = time.monotonic() + 30
        while not info_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        info = json.loads(info_file.read_text())
        target = Target.from_local_core(info)
        asyncio.run(provoke(target, info["api_url"]))
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert "client 'stranger' (certificate " in stderr, stderr
    assert "refused: certificate not registered or not ACTIVE" in stderr, stderr
    assert "client 'denied-publisher': publish to 'not/allowed' not authorized" in stderr, stderr
    assert "Traceback" not in stderr
