"""A run whose API steps come before its device steps runs them in a child process
(engine/split.py): the device process never imports the AWS client, and the run's summary,
journal, clean-up and interruption are as one process makes them. Against local core."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import ROOT, aws_env, start_core
from tests.helpers import aws_client

SPLIT = """\
name: split-test
target: {{kind: local, tls_backend: stdlib}}  # devices over Python's ssl: see HEAVY
fleets:
  - {{name: sensors, prefix: {prefix}, count: {count}, thing_name: "{{prefix}}-{{index:03d}}"}}
steps:
  - create_policy:
      policy: split-test-{prefix}
      document:
        Version: "2012-10-17"
        Statement:
          - {{Effect: Allow, Action: "iot:Connect", Resource: "*:client/${{iot:ClientId}}"}}
          - {{Effect: Allow, Action: "iot:Publish", Resource: "*:topic/s/${{iot:ClientId}}"}}
  - provision: {{fleet: sensors, policy: split-test-{prefix}, pacing: {{rate: {rate}}}}}
  - connect: sensors
  - publish: {{fleet: sensors, topic: "s/{{thing_name}}", payload: {{}}, qos: 1}}
  - telemetry: {{fleet: sensors, topic: "s/{{thing_name}}", payload: {{}}, rate: 1/s,
                 duration: {duration}}}
  - disconnect: sensors
"""

# What the AWS client brings (~45 MB); botocore.exceptions alone is light and stays. And
# cryptography (~11 MB): devices over Python's ssl need none of it (their identities were
# made in the API child; the server CA bundle is read by ssl). And what only some runs use
# (~0.6 MB of fixed RSS): RSA keys' process pool, a plan of labs.
HEAVY = ("aioboto3", "aiobotocore", "aiohttp", "boto3", "botocore.session", "botocore.client",
         "cryptography", "OpenSSL", "multiprocessing", "concurrent.futures.process",
         "fleetsim.engine.labs_plan")

# `fleetsim run` in this interpreter, then the modules it holds at the end.
RUN_AND_LIST = """\
import json, sys
import fleetsim.cli
code = fleetsim.cli.main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.startswith({heavy!r}))
kinds = sorted(m.rsplit(".", 1)[1] for m in sys.modules
               if m.startswith("fleetsim.engine.steps.") and not m.endswith(".base"))
print(json.dumps({{"code": code, "heavy": heavy, "kinds": kinds}}))
"""


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("split") / "state" / "localcore")
    yield running
    running.stop()


def scenario(tmp_path: Path, prefix: str, count: int = 5, rate: str = "100/s",
             duration: str = "1s") -> Path:
    path = tmp_path / f"{prefix}.yaml"
    path.write_text(SPLIT.format(prefix=prefix, count=count, rate=rate, duration=duration))
    return path


def run(core: RunningLocalCore, *args: str, code: str | None = None) -> subprocess.Popen[str]:
    prefix = ["-c", code] if code else ["-m", "fleetsim"]
    return subprocess.Popen([sys.executable, *prefix, *args, "--state-dir",
                             str(core.state_dir.parent)],
                            cwd=core.state_dir.parent.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**aws_env(core), "PYTHONPATH": str(ROOT)})


def ops(summary: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in summary["metrics"]["ops"]:
        counts[entry["op"]] = counts.get(entry["op"], 0) + entry["latency_us"]["count"]
    return counts


def things(core: RunningLocalCore, prefix: str) -> list[str]:
    iot = aws_client(core.api_url)
    return [t["thingName"] for t in iot.list_things(maxResults=250)["things"]
            if t["thingName"].startswith(f"{prefix}-")]


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def test_the_device_steps_run_without_the_aws_client(core: RunningLocalCore,
                                                     tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    # 2 s of telemetry at 1/s: each device's first message falls in the first second (its
    # phase). In 1 s, a device whose phase fell in the step's last few ms sent nothing (the
    # ticker wakes a little after a message is due, and stops at the step's end): 9 of 10
    # publishes, in 1 run of 6 here.
    proc = run(core, "run", str(scenario(tmp_path, "lean", duration="2s")), "--json",
               str(summary),
               code=RUN_AND_LIST.format(heavy=HEAVY))
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    last = json.loads(out.strip().splitlines()[-1])
    # only the scenario's own step kinds were imported (each kind's module, with its model)
    assert last == {"code": 0, "heavy": [], "kinds": sorted(
        ["create_policy", "provision", "connect", "publish", "telemetry", "disconnect"])}, out
    data = json.loads(summary.read_text())
    assert data["passed"], out
    # the API steps' metrics came back from the child, the device steps' are this process's
    counts = ops(data)
    assert counts["api.CreateThing"] == 5 and counts["api.CreateCertificateFromCsr"] == 5
    assert counts["mqtt.connect"] == 5 and counts["mqtt.publish"] >= 10
    assert [s["status"] for s in data["metrics"]["steps"]] == ["ok"] * 6
    assert data["reconcile"]["created"]["thing"] == 5
    # clean-up (in a child too) removed what the run made, and says so
    assert data["cleanup"]["failed"] == [] and data["cleanup"]["removed"]["thing"] == 5
    assert things(core, "lean") == []
    assert (Path(data["journal"]).parent / "cleaned").exists()


def test_ctrl_c_during_the_api_steps_skips_the_devices_and_cleans_up(
        core: RunningLocalCore, tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    runs = core.state_dir.parent / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    proc = run(core, "run", str(scenario(tmp_path, "cut", count=40, rate="4/s")),
               "--json", str(summary))

    def provisioning() -> bool:
        new = [d for d in runs.iterdir() if d not in before] if runs.exists() else []
        journal = new[0] / "journal.jsonl" if new else None
        return (journal is not None and journal.exists()
                and journal.read_text().count('"kind": "thing_principal"') >= 3)

    wait_until(provisioning, "the API child provisioned 3 devices")
    proc.send_signal(signal.SIGINT)  # to the device process, which hands it to the child
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    data = json.loads(summary.read_text())
    steps = {s["name"].split(".", 1)[1]: s["status"] for s in data["metrics"]["steps"]}
    assert steps == {"create_policy": "ok", "provision": "interrupted", "connect": "skipped",
                     "publish": "skipped", "telemetry": "skipped", "disconnect": "skipped"}
    assert data["interrupted"] is True and data["cleanup"]["failed"] == []
    assert things(core, "cut") == []


def test_ctrl_c_during_the_device_steps_disconnects_and_cleans_up(
        core: RunningLocalCore, tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    proc = run(core, "run", str(scenario(tmp_path, "hold", duration="300s")),
               "--json", str(summary))
    wait_until(lambda: len(things(core, "hold")) == 5, "5 things exist")
    wait_until(lambda: not children(proc.pid), "the API child exited")
    time.sleep(2)  # connected, publishing
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    data = json.loads(summary.read_text())
    steps = {s["name"].split(".", 1)[1]: s["status"] for s in data["metrics"]["steps"]}
    assert steps["provision"] == "ok" and steps["telemetry"] == "interrupted"
    assert steps["disconnect"] == "skipped"
    assert data["metrics"]["gauges"]["devices.connected"] == 0
    assert data["cleanup"]["failed"] == [] and data["cleanup"]["removed"]["thing"] == 5
    assert things(core, "hold") == []


def test_kill_9_during_the_api_steps_leaves_what_cleanup_removes(
        core: RunningLocalCore, tmp_path: Path) -> None:
    proc = run(core, "run", str(scenario(tmp_path, "gone", count=40, rate="4/s")))
    wait_until(lambda: len(things(core, "gone")) >= 3, "3 things exist")
    child = children(proc.pid)
    proc.kill()
    proc.communicate(timeout=30)
    for pid in child:  # the child dies with its parent (SIGKILL), as one process did
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists()
                   or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3],
                   f"child {pid} ended", timeout=60)
    out = subprocess.run([sys.executable, "-m", "fleetsim", "cleanup", "--state-dir",
                          str(core.state_dir.parent)], capture_output=True, text=True,
                         env={**aws_env(core), "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert things(core, "gone") == []
    assert os.path.exists(core.state_dir.parent / "runs")
