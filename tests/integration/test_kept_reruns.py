"""Issue 16's "re-running it creates nothing new", through `fleetsim run --keep` against one
real local core: the workshop's provisioning and jobs labs (API provisioning, register-thing,
bulk registration, JITP, JITR, IoT Jobs, and `provision` in Fleet Indexing) as one file of
labs, run three times. The second run creates nothing and finds no drift, by its summary and
by the registry (certificates, things, attachments, jobs counted before and after); a policy
detached by hand is the third run's one drift item, fixed; then `fleetsim cleanup` leaves
nothing, in the registry or as identity files. (The Enable Logging and logging labs are left
out to keep this test short: they make no device identities.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.helpers import aws_client
from tests.integration.test_reconcile_run import fleetsim, run
from tests.integration.test_workshop import account_contents, copy_scenarios

LABS = """\
name: reruns
target: local
labs:
  - {name: API, include: api-provisioning.yaml}
  - {name: Single, include: single-provisioning.yaml}
  - {name: Bulk, include: bulk-provisioning.yaml}
  - {name: JITP, include: jitp.yaml}
  - {name: JITR, include: jitr.yaml}
  - {name: Jobs, include: jobs-workshop.yaml}
  - {name: Fleet Indexing, include: fleet-indexing.yaml}
"""


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("reruns") / "state" / "localcore")
    yield running
    running.stop()


def registry(core: RunningLocalCore) -> dict[str, Any]:
    """The account's contents, with every certificate's status, policies and things, and
    the jobs' statuses."""
    iot = aws_client(core.api_url)
    certificates = [c for page in iot.get_paginator("list_certificates").paginate()
                    for c in page["certificates"]]
    return {**account_contents(core),
            "certificates": sorted(
                (c["certificateId"], c["status"],
                 tuple(sorted(p["policyName"] for p in iot.list_attached_policies(
                     target=c["certificateArn"])["policies"])),
                 tuple(sorted(iot.list_principal_things(
                     principal=c["certificateArn"])["things"])))
                for c in certificates),
            "things": sorted(t["thingName"] for page in iot.get_paginator("list_things")
                             .paginate() for t in page["things"]),
            "jobs": sorted((j["jobId"], j["status"]) for j in iot.list_jobs()["jobs"])}


def identity_files(core: RunningLocalCore) -> list[Path]:
    return sorted(p for p in (core.state_dir.parent / "identities").rglob("*") if p.is_file())


@pytest.mark.timeout(600)
def test_a_kept_rerun_creates_nothing_and_a_detached_policy_is_the_one_drift(
        core: RunningLocalCore, tmp_path: Path) -> None:
    before = registry(core)
    labs = copy_scenarios(tmp_path) / "reruns.yaml"
    labs.write_text(LABS)

    first = run(core, labs, tmp_path / "1.json", "--keep")
    made = registry(core)
    assert first["reconcile"]["created"]["certificate"] == 75  # every device's
    assert len(made["certificates"]) > len(before["certificates"]) + 75  # and observers'
    assert identity_files(core)

    second = run(core, labs, tmp_path / "2.json", "--keep")
    assert second["reconcile"]["created"] == {}
    assert second["reconcile"]["drift_count"] == 0
    reused = second["reconcile"]["reused"]
    assert reused["certificate"] == 75 and reused["thing"] == 75 and reused["job"] == 1
    assert registry(core) == made  # not one certificate, thing, attachment or job more
    counters = second["metrics"]["counters"]
    assert counters["identities.reused"] == 75 and "identities.reprovisioned" not in counters

    iot = aws_client(core.api_url)
    cert = iot.list_thing_principals(thingName="my-first-thing")["principals"][0]
    iot.detach_policy(policyName="my-first-thing_Policy", target=cert)
    third = run(core, labs, tmp_path / "3.json", "--keep")
    assert third["reconcile"]["created"] == {}
    assert [(d["kind"], d["name"], d["fixed"]) for d in third["reconcile"]["drift"]] == [
        ("policy_attachment", "my-first-thing_Policy", True)]
    assert third["reconcile"]["drift"][0]["item"].startswith("not attached to certificate ")
    assert registry(core) == made

    out = fleetsim(core, "cleanup", "--no-wait")
    # all gone but the thing type, which AWS deletes five minutes after its deprecation
    assert out.returncode == 1 and "could not remove" not in out.stdout, out.stdout
    assert "thing_type bulk-type: deletable after" in out.stdout
    assert registry(core) == before
    assert identity_files(core) == []


@pytest.mark.timeout(300)
def test_fleet_provisioning_by_claim_kept_is_reused_without_a_claim(
        core: RunningLocalCore, tmp_path: Path) -> None:
    before = registry(core)
    scenario = copy_scenarios(tmp_path) / "fleet-provisioning.yaml"
    first = run(core, scenario, tmp_path / "1.json", "--keep")
    assert first["reconcile"]["created"]["thing"] == 5
    made = registry(core)

    second = run(core, scenario, tmp_path / "2.json", "--keep")
    assert second["reconcile"]["created"] == {}
    assert second["reconcile"]["drift_count"] == 0
    assert second["reconcile"]["reused"]["thing"] >= 5
    assert registry(core) == made  # no claim certificate, no device certificate
    ops = {o["op"] for o in second["metrics"]["ops"]}
    assert "api.CreateKeysAndCertificate" not in ops  # not even the claim certificate

    # these runs only: the first test's run still waits for its thing type's deletion (AWS's
    # 5 minutes after deprecation), which a clean-up of every pending run would sit out
    for summary in (first, second):
        out = fleetsim(core, "cleanup", "--run", summary["run_id"])
        assert out.returncode == 0, out.stdout + out.stderr
    assert registry(core) == before
    assert identity_files(core) == []
