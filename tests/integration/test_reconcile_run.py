"""The reconciling control plane through `fleetsim run`, against a real local core over TLS:
`--plan` on a fresh core lists the creates and changes nothing; a kept run re-run creates
nothing and finds no drift; a policy detached by hand is reported as exactly that drift and
attached again; an INACTIVE persistent certificate is drift, set ACTIVE again, not an error."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import ROOT, aws_env, start_core
from tests.helpers import aws_client

SCENARIO = """\
name: reconcile-test
fleets:
  - {name: members, prefix: rec-member, count: 2, identities: persistent}
steps:
  - create_policy:
      policy: rec-policy
      document:
        Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: "iot:Connect",
             Resource: "arn:aws:iot:*:*:client/${iot:ClientId}"}
  - create_thing_group: {group: rec-group, policies: [rec-policy]}
  - create_topic_rule:
      rule: rec_rule
      payload:
        sql: "SELECT * FROM 'rec/in'"
        actions: [{republish: {topic: rec/out, roleArn: "arn:aws:iam::123456789012:role/r"}}]
  - provision: {fleet: members, policy: rec-policy, attributes: {type: ws-device}}
  - add_to_thing_group: {fleet: members, group: rec-group}
  - connect: members
  - disconnect: members
"""


@pytest.fixture
def core(tmp_path: Path) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path / "state" / "localcore")
    yield running
    running.stop()


def fleetsim(core: RunningLocalCore, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetsim", *args, "--state-dir",
                           str(core.state_dir.parent)], cwd=core.state_dir.parent.parent,
                          capture_output=True, text=True, timeout=180,
                          env={**aws_env(core), "PYTHONPATH": str(ROOT)})


def run(core: RunningLocalCore, scenario: Path, summary: Path, *flags: str) -> dict[str, Any]:
    out = fleetsim(core, "run", str(scenario), "--json", str(summary), *flags)
    data: dict[str, Any] = json.loads(summary.read_text())
    assert out.returncode == 0 and data["passed"], out.stdout + out.stderr
    return data


def registry(iot: Any) -> dict[str, Any]:
    """What the registry holds, as far as the scenario could change it."""
    certificates = iot.list_certificates()["certificates"]
    return {"things": iot.list_things()["things"],
            "policies": iot.list_policies()["policies"],
            "groups": iot.list_thing_groups()["thingGroups"],
            "certificates": [(c["certificateId"], c["status"]) for c in certificates],
            "attached": {c["certificateId"]: iot.list_attached_policies(
                target=c["certificateArn"])["policies"] for c in certificates}}


def errors_of(summary: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {o["op"]: o["errors"] for o in summary["metrics"]["ops"] if o.get("errors")}


def stored(core: RunningLocalCore, thing: str) -> dict[str, str]:
    identities = core.state_dir.parent / "identities" / "reconcile-test" / "members"
    data: dict[str, str] = json.loads((identities / f"{thing}.json").read_text())
    return data


def test_plan_then_reuse_then_exactly_the_drift_made_by_hand(core: RunningLocalCore,
                                                             tmp_path: Path) -> None:
    scenario = tmp_path / "reconcile.yaml"
    scenario.write_text(SCENARIO)
    iot = aws_client(core.api_url)
    before = registry(iot)

    out = fleetsim(core, "run", str(scenario), "--plan", "--json", str(tmp_path / "p.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert registry(iot) == before  # nothing created or changed
    plan = json.loads((tmp_path / "p.json").read_text())
    assert plan["reconcile"]["created"] == {
        "certificate": 2, "policy": 1, "policy_attachment": 3, "thing": 2,
        "thing_group": 1, "thing_group_membership": 2, "thing_principal": 2, "topic_rule": 1}
    assert plan["reconcile"]["drift"] == []
    mutating = [o["op"] for o in plan["metrics"]["ops"]
                if not o["op"].startswith(("api.Describe", "api.List", "api.Get"))]
    assert mutating == []  # the plan only described
    assert "create  thing" in out.stdout and "rec-member-0, rec-member-1" in out.stdout
    assert "not described" in out.stdout and "connect" in out.stdout

    first = run(core, scenario, tmp_path / "1.json", "--keep")
    assert first["reconcile"]["created"]["thing"] == 2
    assert first["reconcile"]["drift"] == []

    second = run(core, scenario, tmp_path / "2.json", "--keep")
    assert second["reconcile"]["created"] == {}
    assert second["reconcile"]["drift"] == []
    assert second["reconcile"]["reused"]["thing"] == 2
    assert second["reconcile"]["reused"]["policy"] == 1
    assert errors_of(second) == {}  # reuse is not an error

    identity = stored(core, "rec-member-0")
    iot.detach_policy(policyName="rec-policy", target=identity["certificate_arn"])
    third = run(core, scenario, tmp_path / "3.json", "--keep")
    assert third["reconcile"]["created"] == {}
    cert = identity["certificate_id"][:12] + "…"
    assert third["reconcile"]["drift"] == [{
        "kind": "policy_attachment", "name": "rec-policy",
        "item": f"not attached to certificate cert/{cert}", "fixed": True}]
    attached = iot.list_attached_policies(target=identity["certificate_arn"])["policies"]
    assert [p["policyName"] for p in attached] == ["rec-policy"]  # the attachment is back
    assert errors_of(third) == {}

    fourth = run(core, scenario, tmp_path / "4.json", "--keep")
    assert fourth["reconcile"]["created"] == {} and fourth["reconcile"]["drift"] == []


def test_an_inactive_persistent_certificate_is_drift_not_an_error(core: RunningLocalCore,
                                                                  tmp_path: Path) -> None:
    scenario = tmp_path / "reconcile.yaml"
    scenario.write_text(SCENARIO)
    run(core, scenario, tmp_path / "1.json", "--keep")
    iot = aws_client(core.api_url)
    identity = stored(core, "rec-member-1")
    iot.update_certificate(certificateId=identity["certificate_id"], newStatus="INACTIVE")
    iot.remove_thing_from_thing_group(thingGroupName="rec-group", thingName="rec-member-0")
    iot.update_thing(thingName="rec-member-1", attributePayload={  # "" removes an attribute
        "attributes": {"type": ""}, "merge": True})
    rule = iot.get_topic_rule(ruleName="rec_rule")["rule"]
    iot.replace_topic_rule(ruleName="rec_rule", topicRulePayload={
        "sql": "SELECT * FROM 'rec/elsewhere'", "actions": rule["actions"]})

    out = fleetsim(core, "run", str(scenario), "--plan")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"change certificate {identity['certificate_id'][:12]}…: INACTIVE (want ACTIVE)" \
        in out.stdout
    assert "change thing rec-member-0: not in group rec-group" in out.stdout
    described = iot.describe_certificate(certificateId=identity["certificate_id"])
    assert described["certificateDescription"]["status"] == "INACTIVE"  # the plan left it

    second = run(core, scenario, tmp_path / "2.json", "--keep")
    assert sorted((d["kind"], d["name"], d["item"]) for d in second["reconcile"]["drift"]) == [
        ("certificate", identity["certificate_id"][:12] + "…", "INACTIVE (want ACTIVE)"),
        ("thing", "rec-member-0", "not in group rec-group"),
        ("thing", "rec-member-1", "attribute type is missing (want ws-device)"),
        ("topic_rule", "rec_rule", "sql differs")]
    assert all(d["fixed"] for d in second["reconcile"]["drift"])
    assert errors_of(second) == {}
    assert "identities.reprovisioned" not in second["metrics"]["counters"]
    described = iot.describe_certificate(certificateId=identity["certificate_id"])
    assert described["certificateDescription"]["status"] == "ACTIVE"
    groups = iot.list_thing_groups_for_thing(thingName="rec-member-0")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["rec-group"]
    assert iot.describe_thing(thingName="rec-member-1")["attributes"] == {"type": "ws-device"}
    assert iot.get_topic_rule(ruleName="rec_rule")["rule"]["sql"] == "SELECT * FROM 'rec/in'"


def test_a_kept_workshop_lab_passes_again_on_what_it_made(core: RunningLocalCore,
                                                          tmp_path: Path) -> None:
    """The API lab kept, then re-run: its thing, policy and attribute are reused and its
    registry-event checks (if_created) do not expect events of a create that did not happen.
    The single provisioning lab kept, then re-run: register-thing finds the thing (as AWS's
    template provisioning does), which is reused, not created, and not this run's to remove."""
    single = ROOT / "scenarios" / "single-provisioning.yaml"
    assert run(core, single, tmp_path / "s1.json", "--keep")["reconcile"]["created"]["thing"] == 1
    again = run(core, single, tmp_path / "s2.json")
    assert "thing" not in again["reconcile"]["created"]
    assert again["reconcile"]["reused"]["thing"] == 1
    assert aws_client(core.api_url).describe_thing(thingName="my-second-thing")  # kept's own

    scenario = ROOT / "scenarios" / "api-provisioning.yaml"
    first = run(core, scenario, tmp_path / "first.json", "--keep")
    assert first["reconcile"]["created"]["thing"] == 1
    again = run(core, scenario, tmp_path / "again.json", "--keep")
    assert "thing" not in again["reconcile"]["created"]
    assert again["reconcile"]["reused"]["thing"] == 1
    assert again["reconcile"]["reused"]["policy"] == 1
    assert again["reconcile"]["drift"] == []
    names = [c["name"] for c in again["metrics"]["checks"]]
    assert not any("/created" in n or "/updated" in n for n in names)
    assert any("/created" in c["name"] for c in first["metrics"]["checks"])


def test_plan_of_the_workshop_plans_every_lab_on_what_the_labs_before_it_make(
        core: RunningLocalCore, tmp_path: Path) -> None:
    # a copy: the JIT labs' CA folders (../certs/) are this test's own (a plan makes none)
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    iot = aws_client(core.api_url)
    before = registry(iot)
    out = fleetsim(core, "run", str(tmp_path / "scenarios" / "workshop.yaml"), "--plan",
                   "--json", str(tmp_path / "p.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert registry(iot) == before  # nothing created or changed
    assert not (tmp_path / "certs").exists()  # nor any CA made on disk
    plan = json.loads((tmp_path / "p.json").read_text())
    mutating = [o["op"] for o in plan["metrics"]["ops"]
                if not o["op"].startswith(("api.Describe", "api.List", "api.Get"))]
    assert mutating == []  # every lab only described
    labs = {lab["name"]: lab for lab in plan["labs"]}
    assert len(plan["labs"]) == 9 and not [lab for lab in plan["labs"] if lab["failed"]]
    single, bulk = labs["Single Device Provisioning"], labs["Bulk Device Provisioning"]
    assert single["reconcile"]["created"] == {"thing_group": 1, "thing_type": 1}
    # Bulk declares the group and type Single makes: made before it, not missing twice
    assert bulk["reconcile"]["created"] == {}
    assert bulk["created_by"] == {"lab 03 (Single Device Provisioning)": {
        "thing_group": 1, "thing_type": 1}}
    assert labs["JITP"]["created_by"] == {"lab 03 (Single Device Provisioning)": {
        "thing_group": 1}}
    # Registry Events (lab 02) would enable every event type: the jobs lab's are its change
    jobs = labs["IoT Jobs"]
    assert "events" not in jobs["reconcile"]["created"]
    assert jobs["created_by"] == {
        "lab 02 (Registry Events + Device Provisioning with the API)": {"events": 1}}
    # its log level is planned although only Enable Logging (lab 01) would configure logging
    fine = labs["Thing Groups + Fine-Grained Logging"]
    assert fine["reconcile"]["created"]["v2_logging_level"] == 1
    assert plan["reconcile"]["created"]["thing_group"] == 2  # bulk-group once, building-one
    assert plan["reconcile"]["created"]["ca_certificate"] == 2
    assert plan["removes"] == plan["reconcile"]["created"]  # Clean Up removes all of it
    assert "Lab 04: Bulk Device Provisioning (bulk-provisioning.yaml)" in out.stdout
    assert re.search(r"created by lab 03 \(Single Device Provisioning\)\s+thing_group\s+1\s+"
                     r"bulk-group", out.stdout)
    assert "\nTotal\n" in out.stdout


def test_plan_of_labs_that_keep_what_they_make_removes_nothing(core: RunningLocalCore,
                                                                tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(
        "name: one\nsteps:\n  - create_thing_group: plab-group\n")
    (tmp_path / "two.yaml").write_text(
        "name: two\nfleets:\n  - {name: f, prefix: plab-dev, count: 2}\nsteps:\n"
        "  - create_thing_group: plab-group\n  - create_things: f\n"
        "  - add_to_thing_group: {fleet: f, group: plab-group}\n")
    top = tmp_path / "labs.yaml"
    top.write_text("name: plabs\ncleanup: false\nlabs:\n  - {name: One, include: one.yaml}\n"
                   "  - {name: Two, include: two.yaml}\n")
    out = fleetsim(core, "run", str(top), "--plan", "--json", str(tmp_path / "p.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    plan = json.loads((tmp_path / "p.json").read_text())
    one, two = plan["labs"]
    assert one["reconcile"]["created"] == {"thing_group": 1}
    assert two["reconcile"]["created"] == {"thing": 2, "thing_group_membership": 2}
    assert two["created_by"] == {"lab 01 (One)": {"thing_group": 1}}
    assert plan["removes"] is False and one["removes"] is False
    assert "remove: nothing (the run keeps what it creates)" in out.stdout
    assert aws_client(core.api_url).list_thing_groups()["thingGroups"] == []
