"""`fleetsim cleanup` against a real local core: a scenario that makes one resource of each kind
(kept with --keep) is listed by `--dry-run` without a change, then removed entirely with the
account settings put back; a second clean-up finds nothing; `--prefix` removes what is named
so and nothing else, journal or not; a bulk provisioning run killed with SIGKILL while its
registration task runs is removed entirely."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.pki import CertificateAuthority, certificate_pem, generate_key
from tests.conftest import ROOT, aws_env, start_core
from tests.helpers import aws_client

pytestmark = pytest.mark.timeout(300)
# Local core refuses DeleteThingType until a type has been deprecated this long (AWS: five
# minutes); clean-up waits for it.
DELETE_DELAY_S = "1"

EVERYTHING = """\
name: everything
target: local
fleets:
  - {{name: f, prefix: evr-dev, count: 2}}
steps:
  - events: {{enable: all}}
  - iot_logging:
      role: evr-logging-role
      default_level: WARN
      levels: [{{target_type: THING_GROUP, target_name: evr-child, level: DEBUG}}]
  - create_policy:
      policy: evr-policy
      document: {{Version: "2012-10-17", Statement: [{{Effect: Allow, Action: "iot:Connect",
                                                      Resource: "*"}}]}}
  - create_thing_group: evr-parent
  - create_thing_group: {{group: evr-child, parent: evr-parent, policies: [evr-policy]}}
  - create_thing_type: evr-type
  - provision: {{fleet: f, policy: evr-policy}}
  - add_to_thing_group: {{fleet: f, group: evr-child}}
  - register_ca: {{ca: {ca}}}
  - deploy_function:
      function: evr-fn
      source: {root}/lambda/jitr
      role: "arn:aws:iam::{{account_id}}:role/evr-fn-role"
      allow_rules: [evr_rule]
      export: FN
  - create_topic_rule:
      rule: evr_rule
      payload: {{sql: "SELECT * FROM 'evr/#'", actions: [{{lambda: {{functionArn: "${{FN}}"}}}}]}}
  - create_provisioning_template:
      template: evr-template
      body: {root}/scenarios/fleet-provisioning/template.json
      role_arn: arn:aws:iam::123456789012:role/IoTProvisioningRole
  - create_job:
      job_id: "evr-job-{{run_id}}"
      fleet: f
      document: {{operation: reboot}}
      upload: {{bucket: "evr-bucket-{{run_id}}", key: doc.json, create_bucket: true}}
  - search_index:
      query: "thingName:evr-dev*"
      indexing: REGISTRY
      expect: {{count: 2}}
"""


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("cleanup") / "state" / "localcore",
                         env={"FLEETSIM_THING_TYPE_DELETE_DELAY_S": DELETE_DELAY_S})
    yield running
    running.stop()


def fleetsim(core: RunningLocalCore, cwd: Path, *args: str, timeout: float = 240
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetsim", *args,
                           "--state-dir", str(core.state_dir.parent)], cwd=cwd,
                          env={**aws_env(core), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=timeout)


def _all(client: Any, op: str, key: str, **params: Any) -> list[Any]:
    return [item for page in client.get_paginator(op).paginate(**params)
            for item in page[key]]


def account(core: RunningLocalCore) -> dict[str, Any]:
    """Everything clean-up may touch, by kind: names (ids), and the account settings."""
    iot = aws_client(core.api_url)
    try:
        logging: Any = iot.get_v2_logging_options()
        logging.pop("ResponseMetadata", None)
        levels = iot.list_v2_logging_levels()["logTargetConfigurations"]
    except ClientError:  # NotConfiguredException
        logging, levels = None, []
    jobs = [j["jobId"] for j in _all(iot, "list_jobs", "jobs")]
    return {
        "things": {t["thingName"] for t in _all(iot, "list_things", "things")},
        "certificates": {c["certificateId"]
                         for c in _all(iot, "list_certificates", "certificates")},
        "policies": {p["policyName"] for p in _all(iot, "list_policies", "policies")},
        "thing_groups": {g["groupName"] for g in _all(iot, "list_thing_groups", "thingGroups")},
        "thing_types": {t["thingTypeName"] for t in _all(iot, "list_thing_types", "thingTypes")},
        "ca_certificates": {c["certificateId"] for c in iot.list_ca_certificates()
                            ["certificates"]},
        "topic_rules": {r["ruleName"] for r in _all(iot, "list_topic_rules", "rules")},
        "jobs": set(jobs),
        "templates": {t["templateName"]
                      for t in _all(iot, "list_provisioning_templates", "templates")},
        "functions": {f["FunctionName"] for f in aws_client(core.api_url, "lambda")
                      .list_functions()["Functions"]},
        "buckets": {b["Name"] for b in aws_client(core.api_url, "s3")
                    .list_buckets()["Buckets"]},
        "roles": {r["RoleName"] for r in aws_client(core.api_url, "iam")
                  .list_roles()["Roles"]},
        "indexing": iot.get_indexing_configuration()["thingIndexingConfiguration"]
        ["thingIndexingMode"],
        "logging": logging,
        "logging_levels": levels,
        "events": iot.describe_event_configurations()["eventConfigurations"],
    }


def test_cleanup_removes_one_resource_of_each_kind_and_restores_settings(
        core: RunningLocalCore, tmp_path: Path) -> None:
    # indexing off, whatever the module's other tests left: the scenario turns it on
    aws_client(core.api_url).update_indexing_configuration(
        thingIndexingConfiguration={"thingIndexingMode": "OFF"})
    before = account(core)
    scenario = tmp_path / "everything.yaml"
    scenario.write_text(EVERYTHING.format(root=ROOT, ca=tmp_path / "ca"))
    out = fleetsim(core, tmp_path, "run", str(scenario), "--keep")
    assert out.returncode == 0, out.stdout + out.stderr
    iot = aws_client(core.api_url)
    # a policy version and a template version besides the defaults, as a user might add
    iot.create_policy_version(policyName="evr-policy", policyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish",'
        ' "Resource": "*"}]}'), setAsDefault=False)
    iot.create_provisioning_template_version(
        templateName="evr-template", setAsDefault=False,
        templateBody=(ROOT / "scenarios/fleet-provisioning/template.json").read_text())
    made = account(core)
    for kind in ("things", "certificates", "policies", "thing_groups", "thing_types",
                 "ca_certificates", "topic_rules", "jobs", "templates", "functions", "buckets",
                 "roles"):
        assert made[kind] > before[kind], kind  # the scenario made one of each
    assert made["events"] != before["events"] and made["logging"] != before["logging"]
    assert made["indexing"] == "REGISTRY" != before["indexing"]

    dry = fleetsim(core, tmp_path, "cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert account(core) == made  # a dry run changes nothing
    for kind in ("thing (2)", "certificate (2)", "policy (1)", "thing_group (2)",
                 "thing_type (1)", "ca_certificate (1)", "topic_rule (1)", "function (1)",
                 "job (1)", "provisioning_template (1)", "s3_bucket (1)", "iam_role (1)"):
        assert f"  {kind}: " in dry.stdout, (kind, dry.stdout)
    assert "Dry run: nothing was changed." in dry.stdout

    out = fleetsim(core, tmp_path, "cleanup")
    assert out.returncode == 0, out.stdout + out.stderr
    after = account(core)
    if before["logging"] is None:  # the API cannot unset options: they are put back disabled
        assert after["logging"]["disableAllLogs"] is True
        assert after["logging"]["defaultLogLevel"] == "DISABLED"
        after["logging"] = None
    assert after == before, out.stdout

    again = fleetsim(core, tmp_path, "cleanup")
    assert again.returncode == 0 and "Nothing to clean up" in again.stdout, again.stdout


def test_cleanup_without_wait_names_when_a_thing_type_can_go(
        core: RunningLocalCore, tmp_path: Path) -> None:
    scenario = tmp_path / "types.yaml"
    scenario.write_text("name: types\ntarget: local\nsteps: [{create_thing_type: nw-type}]\n")
    out = fleetsim(core, tmp_path, "run", str(scenario), "--keep")
    assert out.returncode == 0, out.stdout + out.stderr
    # deprecated by this clean-up: not deletable before DELETE_DELAY_S
    first = fleetsim(core, tmp_path, "cleanup", "--no-wait")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "thing_type nw-type: deletable after" in first.stdout
    assert "run `fleetsim cleanup` again" in first.stdout
    iot = aws_client(core.api_url)
    assert iot.describe_thing_type(thingTypeName="nw-type")["thingTypeMetadata"]["deprecated"]
    time.sleep(float(DELETE_DELAY_S) + 0.5)
    second = fleetsim(core, tmp_path, "cleanup", "--no-wait")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nw-type" not in {t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]}


def test_prefix_removes_only_matching_names_without_a_journal(
        core: RunningLocalCore, tmp_path: Path) -> None:
    iot, s3 = aws_client(core.api_url), aws_client(core.api_url, "s3")
    doc = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",'
           ' "Resource": "*"}]}')
    certs = {}
    for thing in ("pfx-a", "pfx-b", "keep-a"):
        iot.create_thing(thingName=thing)
        cert = iot.create_keys_and_certificate(setAsActive=True)
        iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
        certs[thing] = cert
    # a certificate shared with a thing outside the prefix is not the prefix's to remove
    iot.attach_thing_principal(thingName="pfx-b", principal=certs["keep-a"]["certificateArn"])
    for policy in ("pfx-policy", "keep-policy"):
        iot.create_policy(policyName=policy, policyDocument=doc)
        iot.attach_policy(policyName=policy, target=certs["pfx-a"]["certificateArn"])
    iot.create_thing_group(thingGroupName="pfx-group")
    iot.create_thing_group(thingGroupName="pfx-child", parentGroupName="pfx-group")
    iot.create_thing_group(thingGroupName="keep-group")
    for bucket in ("pfx-bucket", "keep-bucket"):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="a/b.json", Body=b"{}")
    before = account(core)

    dry = fleetsim(core, tmp_path, "cleanup", "--prefix", "pfx-", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert account(core) == before
    assert "thing (2): pfx-a, pfx-b" in dry.stdout, dry.stdout

    out = fleetsim(core, tmp_path, "cleanup", "--prefix", "pfx-")
    assert out.returncode == 0, out.stdout + out.stderr
    after = account(core)
    assert before["things"] - after["things"] == {"pfx-a", "pfx-b"}
    assert before["policies"] - after["policies"] == {"pfx-policy"}
    assert before["thing_groups"] - after["thing_groups"] == {"pfx-group", "pfx-child"}
    assert before["buckets"] - after["buckets"] == {"pfx-bucket"}
    assert before["certificates"] - after["certificates"] == {
        certs["pfx-a"]["certificateId"], certs["pfx-b"]["certificateId"]}
    assert {k: v for k, v in after.items() if k not in (
        "things", "policies", "thing_groups", "buckets", "certificates")} == \
        {k: v for k, v in before.items() if k not in (
            "things", "policies", "thing_groups", "buckets", "certificates")}
    assert "keep-policy" in after["policies"] and "keep-a" in after["things"]
    assert s3.list_objects_v2(Bucket="keep-bucket")["KeyCount"] == 1

    again = fleetsim(core, tmp_path, "cleanup", "--prefix", "pfx-")
    assert again.returncode == 0 and "nothing to remove" in again.stdout, again.stdout


def _register_ca(iot: Any, common_name: str) -> tuple[CertificateAuthority, str]:
    ca = CertificateAuthority.create(common_name)
    code = iot.get_registration_code()["registrationCode"]
    verification = ca.issue_device(generate_key().public_key(), code)
    reg = iot.register_ca_certificate(
        caCertificate=certificate_pem(ca.cert).decode(),
        verificationCertificate=certificate_pem(verification).decode(), setAsActive=True)
    return ca, str(reg["certificateId"])


def test_prefix_removes_cas_by_their_common_name_and_dynamic_groups(
        core: RunningLocalCore, tmp_path: Path) -> None:
    iot = aws_client(core.api_url)
    iot.update_indexing_configuration(  # dynamic thing groups need the registry indexed
        thingIndexingConfiguration={"thingIndexingMode": "REGISTRY"})
    ca, ca_id = _register_ca(iot, "pfc-devices CA")
    _, kept_ca = _register_ca(iot, "other CA")
    # a device certificate the CA admitted, held by a thing of the prefix and one outside it
    device = iot.register_certificate(
        certificatePem=certificate_pem(ca.issue_device(generate_key().public_key(),
                                                       "pfc-dev")).decode(),
        status="ACTIVE")
    for thing in ("pfc-dev", "outside-dev"):
        iot.create_thing(thingName=thing)
        iot.attach_thing_principal(thingName=thing, principal=device["certificateArn"])
    iot.create_dynamic_thing_group(thingGroupName="pfc-dynamic", queryString="thingName:pfc*")
    iot.create_dynamic_thing_group(thingGroupName="keep-dynamic", queryString="thingName:x*")
    iot.create_thing_group(thingGroupName="pfc-static")
    before = account(core)

    dry = fleetsim(core, tmp_path, "cleanup", "--prefix", "pfc-", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert account(core) == before
    assert "dynamic_thing_group (1): pfc-dynamic" in dry.stdout, dry.stdout
    assert "thing_group (1): pfc-static" in dry.stdout, dry.stdout
    assert f"ca_certificate (1): {ca_id[:12]}… (CN pfc-devices CA)" in dry.stdout, dry.stdout

    out = fleetsim(core, tmp_path, "cleanup", "--prefix", "pfc-")
    assert out.returncode == 0, out.stdout + out.stderr
    after = account(core)
    assert before["ca_certificates"] - after["ca_certificates"] == {ca_id}
    assert kept_ca in after["ca_certificates"]
    assert before["thing_groups"] - after["thing_groups"] == {"pfc-dynamic", "pfc-static"}
    assert before["certificates"] - after["certificates"] == {device["certificateId"]}
    # the thing outside the prefix stays (without the certificate that went with its CA)
    assert before["things"] - after["things"] == {"pfc-dev"}
    assert iot.list_thing_principals(thingName="outside-dev")["principals"] == []
    again = fleetsim(core, tmp_path, "cleanup", "--prefix", "pfc-")
    assert again.returncode == 0 and "nothing to remove" in again.stdout, again.stdout
    # what is not the prefix's, removed by hand, and indexing off again: the module's other
    # tests find the account as they would without this one
    iot.delete_dynamic_thing_group(thingGroupName="keep-dynamic")
    iot.update_ca_certificate(certificateId=kept_ca, newStatus="INACTIVE")
    iot.delete_ca_certificate(certificateId=kept_ca)
    iot.delete_thing(thingName="outside-dev")
    iot.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "OFF"})


def test_empty_prefix_is_refused(core: RunningLocalCore, tmp_path: Path) -> None:
    out = fleetsim(core, tmp_path, "cleanup", "--prefix", "")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "--prefix is empty" in out.stderr + out.stdout


def test_a_run_does_not_detach_its_policy_from_what_it_did_not_attach(
        core: RunningLocalCore, tmp_path: Path) -> None:
    """A run's clean-up undoes its own attachments; a device it did not make (another shard's,
    another run's) that uses its policy keeps it: the policy is left, and said so."""
    scenario = tmp_path / "own.yaml"
    scenario.write_text("""\
name: own-policy
steps:
  - create_policy:
      policy: own-policy
      document: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "iot:Connect",
                                                    Resource: "*"}]}
""")
    kept = fleetsim(core, tmp_path, "run", str(scenario), "--keep")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    iot = aws_client(core.api_url)
    foreign = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    iot.attach_policy(policyName="own-policy", target=foreign)

    out = fleetsim(core, tmp_path, "cleanup")
    assert out.returncode != 0
    assert "policy own-policy: DeleteConflictException" in out.stdout + out.stderr
    assert [p["policyName"] for p in iot.list_attached_policies(target=foreign)["policies"]] \
        == ["own-policy"]

    named = fleetsim(core, tmp_path, "cleanup", "--prefix", "own-")  # named for removal
    assert named.returncode == 0, named.stdout + named.stderr
    assert iot.list_attached_policies(target=foreign)["policies"] == []
    assert "own-policy" not in [p["policyName"] for p in iot.list_policies()["policies"]]
