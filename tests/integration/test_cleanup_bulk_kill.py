"""The workshop's bulk provisioning lab (EC keys) for 200 devices, `fleetsim run` killed with
SIGKILL once its registration task has started making things (what the task makes is
journaled by nobody: the run dies before the task's reports are read), then `fleetsim
cleanup`: it stops the task, reads what it made from its RESULTS report, and removes all of
it - the registry, S3, the thing type and group are left as they were."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import ROOT, aws_env, start_core
from tests.helpers import aws_client

pytestmark = pytest.mark.timeout(400)
DEVICES = 200


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("bulkkill") / "state" / "localcore",
                         env={"FLEETSIM_THING_TYPE_DELETE_DELAY_S": "1"})
    yield running
    running.stop()


def registry(core: RunningLocalCore) -> dict[str, set[str]]:
    iot, s3 = aws_client(core.api_url), aws_client(core.api_url, "s3")

    def names(op: str, key: str, field: str) -> set[str]:
        return {item[field] for page in iot.get_paginator(op).paginate()
                for item in page[key]}

    return {"things": names("list_things", "things", "thingName"),
            "certificates": names("list_certificates", "certificates", "certificateId"),
            "policies": names("list_policies", "policies", "policyName"),
            "groups": names("list_thing_groups", "thingGroups", "groupName"),
            "types": names("list_thing_types", "thingTypes", "thingTypeName"),
            "templates": names("list_provisioning_templates", "templates", "templateName"),
            "buckets": {b["Name"] for b in s3.list_buckets()["Buckets"]
                        if not b["Name"].startswith("iot-registration-reports-")}}


def _task_started(runs: Path) -> bool:
    return any("thing_registration_task" in p.read_text()
               for p in runs.glob("*/journal.jsonl")) if runs.exists() else False


def test_bulk_run_killed_while_its_task_runs_is_removed_by_cleanup(
        core: RunningLocalCore, tmp_path: Path) -> None:
    state = core.state_dir.parent
    env = {**aws_env(core), "PYTHONPATH": str(ROOT)}
    before = registry(core)
    iot = aws_client(core.api_url)
    # The lab's scenario with EC P-256 device keys: 200 RSA-2048 keys take minutes on a
    # loaded machine, and the keys are not what is tested.
    lab = (ROOT / "scenarios" / "bulk-provisioning.yaml").read_text()
    assert "key_type: rsa-2048" in lab and "template: workshop/" in lab
    scenario = tmp_path / "bulk-provisioning.yaml"
    scenario.write_text(lab.replace("key_type: rsa-2048", "key_type: ec-p256").replace(
        "template: workshop/", f"template: {ROOT / 'scenarios' / 'workshop'}/"))
    proc = subprocess.Popen([sys.executable, "-m", "fleetsim", "run", str(scenario),
                             "--devices", str(DEVICES), "--state-dir", str(state)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not _task_started(state / "runs"):
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) early"
            assert time.monotonic() < deadline, "the registration task did not start"
            time.sleep(0.02)
        # half-way: once the task has made some of the things
        while not any(t["thingName"].startswith("bulky")
                      for t in iot.list_things(maxResults=250)["things"]):
            assert time.monotonic() < deadline, "the registration task made no thing"
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    made = registry(core)
    assert made["things"] - before["things"], "the task had made things at the kill"

    out = subprocess.run([sys.executable, "-m", "fleetsim", "cleanup", "--state-dir",
                          str(state)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    after = registry(core)
    assert not {t for t in after["things"] if t.startswith("bulky")}
    assert after == before, out.stdout
    again = subprocess.run([sys.executable, "-m", "fleetsim", "cleanup", "--state-dir",
                            str(state)], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and "Nothing to clean up" in again.stdout, again.stdout
