"""Many devices, each with its own certificate and mutual-TLS session, driven by `fleetsim run`
against a real local core: the observer's counts and latencies land in the JSON summary, a
Ctrl-C disconnects every device cleanly, and shards merge exactly."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetsim.device import DeviceIdentity, DeviceSession, Observed, Observer
from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.metrics.histogram import Histogram
from fleetsim.target import Target
from tests.conftest import ROOT, aws_env, start_core
from tests.helpers import aws_client

FLEET = """\
name: fleet-test
fleets:
  - {{name: sensors, prefix: sensor, count: {count}, thing_name: "{{prefix}}-{{index:04d}}"}}
steps:
  - create_policy:
      policy: fleet-test-sensor
      document:
        Version: "2012-10-17"
        Statement:
          - {{Effect: Allow, Action: "iot:Connect", Resource: "*:client/${{iot:ClientId}}"}}
          - {{Effect: Allow, Action: "iot:Publish", Resource: "*:topic/t/${{iot:ClientId}}"}}
  - observe: {{topics: ["t/+"]}}
  - provision: {{fleet: sensors, policy: fleet-test-sensor, pacing: {{concurrency: 32}}}}
  - connect: {{fleet: sensors, pacing: {{rate: 400/s, concurrency: 100, jitter: 20ms}}}}
  - telemetry:
      fleet: sensors
      topic: "t/{{thing_name}}"
      payload: {{seq: "{{seq}}", v: "{{rand_int(1, 9)}}"}}
      rate: {rate}
      duration: {duration}
  - expect:
      timeout: 10s
      messages: [{{topic: "t/+", count: {expected}}}]
  - disconnect: sensors
"""


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("fleet") / "state" / "localcore")
    yield running
    running.stop()


def fleetsim(core: RunningLocalCore, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fleetsim", *args,
                             "--state-dir", str(core.state_dir.parent)],
                            cwd=core.state_dir.parent.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**aws_env(core), "PYTHONPATH": str(ROOT)})


def write_scenario(tmp_path: Path, count: int, rate: str = "1/s", duration: str = "3s",
                   expected: int = 1) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(count=count, rate=rate, duration=duration, expected=expected))
    return path


def ops(summary: dict) -> dict[str, Histogram]:
    merged: dict[str, Histogram] = {}
    for entry in summary["metrics"]["ops"]:
        merged.setdefault(entry["op"], Histogram()).merge(
            Histogram.from_dict(entry["latency_us"]))
    return merged


def test_200_devices_connect_publish_and_are_observed(core: RunningLocalCore,
                                                      tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, 200, rate="1/s", duration="3s", expected=400)
    summary, timeline = tmp_path / "s.json", tmp_path / "t.csv"
    proc = fleetsim(core, "run", str(scenario), "--json", str(summary), "--timeline",
                    str(timeline))
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    data = json.loads(summary.read_text())
    hist = ops(data)
    assert hist["mqtt.connect"].count == 200 + 1  # the devices and the observer
    assert hist["api.CreateCertificateFromCsr"].count == 200 + 1  # and the observer
    published = hist["mqtt.publish"].count
    assert published >= 400
    assert data["metrics"]["counters"]["messages.received"] == published
    assert hist["e2e"].count == published
    assert 0 < hist["e2e"].percentile(50) <= hist["e2e"].percentile(99) <= hist["e2e"].max
    assert data["metrics"]["gauges"]["devices.connected"] == 0
    entries = [json.loads(line) for line in Path(data["journal"]).read_text().splitlines()]
    certs = {e["id"] for e in entries if e["kind"] == "certificate" and "id" in e}
    assert len(certs) == 200 + 1  # one certificate of its own per device, and the observer's
    # clean-up removed the identity files with their certificates: the devices' and the
    # observer's (a run that is cleaned up leaves none)
    assert not (core.state_dir.parent / "identities" / "fleet-test").exists()
    rows = list(csv.DictReader(timeline.open()))
    assert sum(int(r["mqtt.publish"]) for r in rows) == published  # per second, all of them
    assert [int(r["elapsed_s"]) for r in rows] == list(range(len(rows)))


def presence_watcher(core: RunningLocalCore, tmp_path: Path) -> tuple[DeviceIdentity, str]:
    iot = aws_client(core.api_url, max_attempts=None)
    out = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_policy(policyName="presence-watcher", policyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect", "iot:Subscribe", "iot:Receive"],
             "Resource": "*"}]}))
    iot.attach_policy(policyName="presence-watcher", target=out["certificateArn"])
    identity = DeviceIdentity("test", 0, "presence-watcher", "rsa-2048",
                              out["keyPair"]["PrivateKey"].encode()
                              ).with_certificate(out["certificatePem"])
    return identity, out["certificateArn"]


def is_sensor(message: Observed) -> bool:
    return message.topic.rsplit("/", 1)[1].startswith("sensor-")


async def test_sigint_disconnects_every_device_and_writes_summary(core: RunningLocalCore,
                                                                  tmp_path: Path) -> None:
    identity, _ = presence_watcher(core, tmp_path)
    target = Target.local(core.api_url, core.mqtt_host, core.mqtt_port, core.root_ca)
    scenario = write_scenario(tmp_path, 50, rate="2/s", duration="120s")
    summary = tmp_path / "s.json"
    async with DeviceSession(identity, target) as watcher, \
            Observer(watcher, ["$aws/events/presence/+/+"]) as presence:
        proc = fleetsim(core, "run", str(scenario), "--json", str(summary))
        # Interrupt once every device is connected and publishing.
        await presence.wait_for_count("$aws/events/presence/connected/+", 50, is_sensor,
                                      timeout=120)
        await asyncio.sleep(1)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
        stopped_in = time.monotonic() - started
        disconnected = await presence.wait_for_count(
            "$aws/events/presence/disconnected/+", 50, is_sensor, timeout=20)
    assert proc.returncode == 130, out
    assert stopped_in < 30, out  # clean-up included; the devices themselves go at once
    assert all(m.data["clientInitiatedDisconnect"] for m in disconnected), \
        [m.data for m in disconnected if not m.data["clientInitiatedDisconnect"]]
    data = json.loads(summary.read_text())
    assert data["interrupted"] is True
    steps = {s["name"].split(".", 1)[1]: s["status"] for s in data["metrics"]["steps"]}
    assert steps["telemetry"] == "interrupted"
    assert steps["expect"] == "skipped"
    assert data["metrics"]["gauges"]["devices.connected"] == 0
    assert ops(data)["mqtt.publish"].count > 0
    assert data["cleanup"]["failed"] == []


def test_shards_split_a_fleet_and_merge_exactly(core: RunningLocalCore, tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, 30, rate="1/s", duration="2s", expected=1)
    a, b, merged = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "m.json"
    procs = [fleetsim(core, "run", str(scenario), "--shard", "1/2", "--json", str(a)),
             fleetsim(core, "run", str(scenario), "--shard", "2/2", "--json", str(b))]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    shards = [json.loads(a.read_text()), json.loads(b.read_text())]
    # Each shard made its own half of the fleet: 15 + 15 distinct things.
    assert [ops(s)["api.CreateThing"].count for s in shards] == [15, 15]
    report = subprocess.run([sys.executable, "-m", "fleetsim", "report", "--merge", str(a),
                             str(b), "--json", str(merged)], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert report.returncode == 0, report.stderr
    total = ops(json.loads(merged.read_text()))
    for op in ("api.CreateThing", "mqtt.connect", "mqtt.publish"):
        expected = ops(shards[0])[op].copy().merge(ops(shards[1])[op])
        assert total[op] == expected  # bucket for bucket
    assert total["api.CreateThing"].count == 30


def test_cleanup_after_kill_9_removes_what_the_run_created(core: RunningLocalCore,
                                                          tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, 20, rate="1/s", duration="300s")
    runs = core.state_dir.parent / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    proc = fleetsim(core, "run", str(scenario))
    try:
        deadline = time.monotonic() + 120
        journal = None
        while time.monotonic() < deadline:  # until every device is provisioned
            new = [d for d in runs.iterdir() if d not in before] if runs.exists() else []
            if new and (new[0] / "journal.jsonl").exists():
                journal = new[0] / "journal.jsonl"
                if journal.read_text().count('"kind": "thing_principal"') == 20:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the run did not provision 20 devices: {journal}")
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    created = [json.loads(line) for line in journal.read_text().splitlines()]
    certs = {e["id"] for e in created if e["kind"] == "certificate" and "id" in e}
    iot = aws_client(core.api_url)
    assert len([t for t in iot.list_things(maxResults=250)["things"]
                if t["thingName"].startswith("sensor-")]) == 20
    out = subprocess.run([sys.executable, "-m", "fleetsim", "cleanup", "--state-dir",
                          str(core.state_dir.parent)], capture_output=True, text=True,
                         env={**aws_env(core), "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "removed 21 certificate" in out.stdout  # the devices' and the observer's
    assert not [t for t in iot.list_things(maxResults=250)["things"]
                if t["thingName"].startswith("sensor-")]
    left = {c["certificateId"] for c in iot.list_certificates(pageSize=250)["certificates"]}
    assert not certs & left


PERSISTENT = """\
name: persistent-test
fleets:
  - {name: keep, prefix: keeper, count: 4, key_type: rsa-2048, identities: persistent}
steps:
  - create_policy:
      fleet: keep
      policy: persistent-test
      document: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "iot:*",
                                                      Resource: "*"}]}
  - provision: {fleet: keep, policy: persistent-test}
  - connect: keep
  - publish: {fleet: keep, topic: "k/{thing_name}", payload: {}, qos: 1}
  - disconnect: keep
"""


def test_persistent_identities_are_reused_then_cleaned_up(core: RunningLocalCore,
                                                          tmp_path: Path) -> None:
    scenario = tmp_path / "persistent.yaml"
    scenario.write_text(PERSISTENT)
    summaries = []
    for n in (1, 2):
        summary = tmp_path / f"run{n}.json"
        out, _ = fleetsim(core, "run", str(scenario), "--json", str(summary)).communicate(
            timeout=180)
        data = json.loads(summary.read_text())
        assert data["passed"], out
        summaries.append(data)
    first, second = (ops(s) for s in summaries)
    assert first["api.CreateCertificateFromCsr"].count == 4  # RSA keys made for a CSR
    assert "api.CreateCertificateFromCsr" not in second and "api.CreateThing" not in second
    # checked in bulk (the journal vouches for the attachments), not two calls per device
    assert "api.DescribeCertificate" not in second and "api.ListThingPrincipals" not in second
    assert second["api.ListCertificates"].count == 1
    assert summaries[1]["metrics"]["counters"]["identities.reused"] == 4
    assert second["mqtt.publish"].count == 4
    key = core.state_dir.parent / "identities" / "persistent-test" / "keep" / "keeper-0.key"
    assert key.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert key.stat().st_mode & 0o777 == 0o600
    iot = aws_client(core.api_url)
    keepers = [t for t in iot.list_things(maxResults=250)["things"]
               if t["thingName"].startswith("keeper-")]
    assert len(keepers) == 4  # the runs kept them
    # the second run found its policy there: reuse, not an error
    assert errors_of(summaries[1]) == {}
    assert summaries[1]["metrics"]["counters"]["policies.reused"] == 1
    # a device whose certificate was removed by hand is provisioned again, not an error
    identity = json.loads((key.parent / "keeper-1.json").read_text())
    iot.update_certificate(certificateId=identity["certificate_id"], newStatus="INACTIVE")
    iot.detach_thing_principal(thingName="keeper-1", principal=identity["certificate_arn"])
    iot.detach_policy(policyName="persistent-test", target=identity["certificate_arn"])
    iot.delete_certificate(certificateId=identity["certificate_id"])
    third = run_persistent(core, scenario, tmp_path / "run3.json")
    assert errors_of(third) == {}
    assert third["metrics"]["counters"]["identities.reprovisioned"] == 1
    assert third["metrics"]["counters"]["identities.reused"] == 3
    # a stored key damaged since is named where it is read, as its device connects; the
    # fleet's other devices go on
    damaged = key.parent / "keeper-2.key"
    damaged.write_text(damaged.read_text()[:80])
    out, _ = fleetsim(core, "run", str(scenario), "--json",
                      str(tmp_path / "run-damaged.json")).communicate(timeout=180)
    data = json.loads((tmp_path / "run-damaged.json").read_text())
    assert not data["passed"]
    connect = next(s for s in data["metrics"]["steps"] if s["name"] == "3.connect")
    assert connect["status"] == "partial"
    assert connect["detail"].startswith(
        f"1 device(s) failed; first: stored identity file {damaged} is not a readable PEM "
        "private key")
    assert ops(data)["mqtt.publish"].count == 3
    identities = core.state_dir.parent / "identities" / "persistent-test"
    out = subprocess.run([sys.executable, "-m", "fleetsim", "cleanup", "--state-dir",
                          str(core.state_dir.parent)], capture_output=True, text=True,
                         env={**aws_env(core), "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not [t for t in iot.list_things(maxResults=250)["things"]
                if t["thingName"].startswith("keeper-")]
    assert "persistent-test" not in {p["policyName"] for p in iot.list_policies()["policies"]}
    assert not identities.exists()  # removed from disk with the certificates
    # so the next run starts afresh, without a ResourceNotFoundException on the way
    fourth = run_persistent(core, scenario, tmp_path / "run4.json")
    assert errors_of(fourth) == {}
    assert "identities.reprovisioned" not in fourth["metrics"]["counters"]
    assert ops(fourth)["api.CreateCertificateFromCsr"].count == 4
    subprocess.run([sys.executable, "-m", "fleetsim", "cleanup", "--state-dir",
                    str(core.state_dir.parent)], capture_output=True,
                   env={**aws_env(core), "PYTHONPATH": str(ROOT)}, timeout=120, check=True)


def run_persistent(core: RunningLocalCore, scenario: Path, summary: Path) -> dict:
    out, _ = fleetsim(core, "run", str(scenario), "--json", str(summary)).communicate(
        timeout=180)
    data = json.loads(summary.read_text())
    assert data["passed"], out
    return data


def errors_of(summary: dict) -> dict[str, dict[str, int]]:
    """The summary's errors table: errors by operation, where there are any."""
    return {o["op"]: o["errors"] for o in summary["metrics"]["ops"] if o.get("errors")}
