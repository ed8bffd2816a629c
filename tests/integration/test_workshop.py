"""The whole workshop (`scenarios/workshop.yaml`) as `make demo` runs it, against a real local
core: every lab passes, the summary carries the per-lab table, and nothing the run created is
left in the account afterwards; the README's table of the workshop's labs, whose AWS CLI
commands are run here exactly as the README writes them; and a file of labs whose first lab
fails (the labs after it not run, the run failed, its clean-up done all the same)."""

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
from fleetsim.pki.certs import build_csr
from fleetsim.pki.keys import generate_key
from tests.awscli import AWS
from tests.conftest import ROOT, aws_env, start_core
from tests.helpers import aws_client

README = ROOT / "README.md"


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("workshop") / "state" / "localcore")
    yield running
    running.stop()


def fleetsim_run(core: RunningLocalCore, scenario: Path, tmp_path: Path, timeout: float
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`fleetsim run` as `make demo` does, on this core's state dir."""
    summary = tmp_path / "summary.json"
    out = subprocess.run([sys.executable, "-m", "fleetsim", "run", str(scenario),
                          "--json", str(summary), "--state-dir", str(core.state_dir.parent)],
                         cwd=tmp_path, env={**aws_env(core), "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=timeout)
    return out, json.loads(summary.read_text()) if summary.exists() else {}


def copy_scenarios(tmp_path: Path) -> Path:
    """The scenarios and the Lambda sources beside them, copied under `tmp_path` so that the
    CAs the JIT labs make on first use (../certs/) are the test's own; the copied
    scenarios' folder."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    shutil.copytree(ROOT / "lambda", tmp_path / "lambda",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "scenarios"


def account_contents(core: RunningLocalCore) -> dict[str, Any]:
    """What the account holds that a run could have made."""
    iot = aws_client(core.api_url)
    lam = aws_client(core.api_url, "lambda")
    s3 = aws_client(core.api_url, "s3")
    iam = aws_client(core.api_url, "iam")
    return {
        "things": [t["thingName"] for t in iot.list_things()["things"]],
        "certificates": [c["certificateId"] for c in iot.list_certificates()["certificates"]],
        "policies": [p["policyName"] for p in iot.list_policies()["policies"]],
        "groups": [g["groupName"] for g in iot.list_thing_groups()["thingGroups"]],
        "cas": [c["certificateId"] for c in iot.list_ca_certificates()["certificates"]],
        "rules": [r["ruleName"] for r in iot.list_topic_rules()["rules"]],
        "jobs": [j["jobId"] for j in iot.list_jobs()["jobs"]],
        "types": [t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]
                  if not t["thingTypeMetadata"].get("deprecated")],
        "functions": [f["FunctionName"] for f in lam.list_functions()["Functions"]],
        # the service's own bucket of registration task reports is not the run's
        "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]
                    if not b["Name"].startswith("iot-registration-reports-")],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"]],
        "indexing": iot.get_indexing_configuration()["thingIndexingConfiguration"][
            "thingIndexingMode"],
        "levels": logging_levels(iot),
    }


def logging_levels(iot: Any) -> list[Any]:
    """The v2 logging levels set; none before logging was ever configured (the API then
    answers NotConfiguredException, and once configured it cannot be unset again)."""
    try:
        return list(iot.list_v2_logging_levels()["logTargetConfigurations"])
    except iot.exceptions.NotConfiguredException:
        return []


@pytest.mark.timeout(600)
def test_the_whole_workshop_passes_every_lab_and_leaves_nothing(
        core: RunningLocalCore, tmp_path: Path) -> None:
    before = account_contents(core)
    scenarios = copy_scenarios(tmp_path)
    out, summary = fleetsim_run(core, scenarios / "workshop.yaml", tmp_path, 540)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    labs = summary["labs"]
    assert [(lab["name"], lab["status"]) for lab in labs] == [
        ("Enable Logging", "pass"),
        ("Registry Events + Device Provisioning with the API", "pass"),
        ("Single Device Provisioning", "pass"), ("Bulk Device Provisioning", "pass"),
        ("JITP", "pass"), ("JITR", "pass"), ("IoT Jobs", "pass"), ("Fleet Indexing", "pass"),
        ("Thing Groups + Fine-Grained Logging", "pass"), ("Clean Up", "pass")]
    assert all(set(lab) == {"name", "file", "status", "seconds", "steps", "detail"}
               and lab["seconds"] > 0 for lab in labs)
    assert [lab["steps"] for lab in labs] == [1, 12, 8, 8, 7, 7, 13, 8, 14, 2]
    assert Path(labs[3]["file"]).name == "bulk-provisioning.yaml"
    assert summary["passed"] is True and summary["cleanup"]["failed"] == []
    checks = {c["name"]: c["passed"] for c in summary["metrics"]["checks"]}
    assert checks["nothing the run created is left"] is True
    # every lab's steps are in the summary, under the lab's number
    steps = [s["name"] for s in summary["metrics"]["steps"]]
    assert {name.split("/")[0] for name in steps} == {f"lab{n:02d}" for n in range(1, 10)}
    assert "Labs (10/10 passed)" in out.stdout
    assert re.search(r"^\s+10\s+Clean Up\s+PASS\s", out.stdout, re.M)
    assert (tmp_path / "certs" / "jit-ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    # nothing is left: the account holds what it held before (thing types are deprecated,
    # as AWS deletes a type only five minutes after that)
    after = account_contents(core)
    assert after == before
    # nor any device's identity files (keys, certificates) on disk
    identities = core.state_dir.parent / "identities"
    assert [p for p in identities.rglob("*") if p.is_file()] == []
    assert "bulk-type" in [t["thingTypeName"] for t in aws_client(core.api_url)
                           .list_thing_types()["thingTypes"]]


@pytest.mark.timeout(120)
def test_a_failed_lab_stops_the_labs_after_it_and_the_run_still_cleans_up(
        core: RunningLocalCore, tmp_path: Path) -> None:
    (tmp_path / "makes.yaml").write_text(
        "name: makes\nfleets:\n  - {name: f, prefix: labs-fail, count: 2}\nsteps:\n"
        "  - create_things: f\n  - expect:\n      timeout: 1s\n      things:\n"
        "        - {fleet: f, attributes: {colour: blue}}\n")
    (tmp_path / "never.yaml").write_text(
        "name: never\nfleets:\n  - {name: g, prefix: labs-never}\nsteps:\n"
        "  - create_things: g\n")
    top = tmp_path / "top.yaml"
    top.write_text("name: top\nlabs:\n  - {name: Makes, include: makes.yaml}\n"
                   "  - {name: Never, include: never.yaml}\n")
    out, summary = fleetsim_run(core, top, tmp_path, 110)
    assert out.returncode == 1, out.stdout + out.stderr
    assert [(lab["name"], lab["status"]) for lab in summary["labs"]] == [
        ("Makes", "fail"), ("Never", "not_run"), ("Clean Up", "pass")]
    assert summary["labs"][0]["detail"].startswith("2.expect: failed: 1 of 1 checks failed")
    assert summary["labs"][1]["seconds"] == 0
    assert re.search(r"^\s+2\s+Never\s+not run\s+-\s", out.stdout, re.M), out.stdout
    names = [t["thingName"] for t in aws_client(core.api_url).list_things()["things"]]
    assert not [n for n in names if n.startswith("labs-")]
    # with `continue`, the next lab runs
    top.write_text(top.read_text().replace("include: makes.yaml}",
                                           "include: makes.yaml, on_failure: continue}"))
    out, summary = fleetsim_run(core, top, tmp_path, 110)
    assert out.returncode == 1
    assert [lab["status"] for lab in summary["labs"]] == ["fail", "pass", "pass"]


# Runs each `aws ...` argv (NUL-separated files, in order) with the AWS CLI's own driver in one
# process of its interpreter: the same argv, without paying the CLI's start-up per command.
AWS_DRIVER = """
import contextlib, io, sys
from awscli.clidriver import create_clidriver
for path in sys.argv[1:]:
    args = open(path, "rb").read().decode().split("\\0")[:-1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = create_clidriver().main(args)
    if rc != 0:
        sys.exit(f"FAILED ({rc}): aws {' '.join(args)}")
"""


def run_as_bash_would(commands: list[str], cwd: Path, env: dict[str, str]
                      ) -> subprocess.CompletedProcess[str]:
    """Each command through bash, in one shell and in order (its assignments, quoting and
    expansions), with `aws` a function that writes down the argv bash gave it; then those
    argvs through the AWS CLI, in order, stopping at the first that fails."""
    argv_dir = cwd / "argv"
    argv_dir.mkdir()
    script = 'n=0; aws() { n=$((n+1)); printf "%s\\0" "$@" > "$ARGV_DIR/$(printf %03d $n)"; }\n'
    script += "\n".join(f"{c} || exit 1" for c in commands)
    bash = subprocess.run(["bash", "-c", script], cwd=cwd, env={**env, "ARGV_DIR": str(argv_dir)},
                          capture_output=True, text=True, timeout=60)
    if bash.returncode != 0:
        return bash
    argvs = sorted(str(p) for p in argv_dir.iterdir())
    assert len(argvs) == sum(c.startswith("aws ") for c in commands)
    return subprocess.run([str(AWS.parent / "python"), "-c", AWS_DRIVER, *argvs], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=240)


def readme_commands() -> list[str]:
    """The commands column of the README's table of the workshop's labs, in order."""
    text = README.read_text()
    start = text.index("| lab | scenario | workshop commands that work verbatim on local core |")
    rows = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    commands = []
    for row in rows:
        cell = re.split(r"(?<!\\)\|", row)[3]
        commands += [c.replace("\\|", "|") for c in re.findall(r"`([^`]+)`", cell)]
    return commands


@pytest.mark.skipif(not AWS.exists(), reason="the AWS CLI is installed by `make tools`")
@pytest.mark.timeout(900)
def test_readme_workshop_commands_work_verbatim_and_the_workshop_runs_after_them(
        tmp_path: Path) -> None:
    # a core of its own: the commands leave what the workshop's labs make (my-first-thing,
    # building-one, the single-provisioning template's policy named by its document's hash)
    core = start_core(tmp_path / "state" / "localcore")
    try:
        (tmp_path / "cli").mkdir()
        _readme_commands_work_verbatim(core, tmp_path / "cli")
        # then the whole workshop on that account (`make demo` after trying the commands):
        # it reuses what the commands made, and its Clean Up leaves exactly that
        before = account_contents(core)
        scenarios = copy_scenarios(tmp_path)
        out, summary = fleetsim_run(core, scenarios / "workshop.yaml", tmp_path, 540)
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
        assert [lab["status"] for lab in summary["labs"]] == ["pass"] * 10
        assert summary["reconcile"]["reused"]["thing"] >= 3  # my-first-thing, job-agent, ...
        assert account_contents(core) == before
    finally:
        core.stop()


def _readme_commands_work_verbatim(core: RunningLocalCore, tmp_path: Path) -> None:
    commands = readme_commands()
    assert len(commands) >= 30 and commands[0] == "aws iot describe-event-configurations"
    # What the workshop has ready before its commands: a home with templateBody.json, the
    # bucket, bulk.json (mk-bulk.sh: one line per device with its CSR), job-document.json,
    # and the variables it asks you to fill in.
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "scenarios" / "workshop" / "templateBody.json", home)
    shutil.copy(ROOT / "scenarios" / "workshop" / "job-document.json", tmp_path)
    csr = build_csr(generate_key("rsa-2048"), "readme-bulky0").decode()
    (tmp_path / "bulk.json").write_text(json.dumps(
        {"ThingName": "readme-bulky0", "SerialNumber": "0", "CSR": csr}) + "\n")
    account = aws_client(core.api_url, "sts").get_caller_identity()["Account"]
    aws_client(core.api_url, "s3").create_bucket(Bucket="readme-workshop")
    # the Enable Logging lab's console steps: the role, registered with AWS IoT at WARN
    role = aws_client(core.api_url, "iam").create_role(
        RoleName="AWSIoTAccessServices", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    aws_client(core.api_url).set_v2_logging_options(roleArn=role, defaultLogLevel="WARN")
    env = {**aws_env(core), "HOME": str(home), "PATH": f"{AWS.parent}:/usr/bin:/bin",
           "S3_BUCKET": "readme-workshop",
           "ARN_IOT_PROVISIONING_ROLE": f"arn:aws:iam::{account}:role/IoTProvisioningRole",
           "JOB_THING_ARN": f"arn:aws:iot:us-east-1:{account}:thing/job-agent",
           "JOB_ID": "468"}
    out = run_as_bash_would(commands, tmp_path, env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # they did what the workshop says they do
    iot = aws_client(core.api_url)
    thing = iot.describe_thing(thingName="my-first-thing")
    assert thing["attributes"] == {"type": "ws-device"}
    assert iot.describe_job(jobId="468")["job"]["targets"] == [env["JOB_THING_ARN"]]
    assert [t["logTarget"]["targetName"] for t in iot.list_v2_logging_levels()[
        "logTargetConfigurations"]] == ["building-one"]
    assert "group-member" in iot.list_things_in_thing_group(
        thingGroupName="building-one")["things"]
    assert (tmp_path / "my-first-thing.private.key").exists()


def test_validate_checks_included_files_at_their_own_positions(tmp_path: Path) -> None:
    (tmp_path / "labs").mkdir()
    bad = tmp_path / "labs" / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - wait: soon\n")
    top = tmp_path / "top.yaml"
    top.write_text("name: top\nlabs:\n  - {name: Bad, include: labs/bad.yaml}\n"
                   "  - {name: Gone, include: gone.yaml}\n")
    out = subprocess.run([sys.executable, "-m", "fleetsim", "validate", str(top)],
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"{top}:4:27: labs[1].include: gone.yaml is not a readable file (looked for "
        f"{tmp_path / 'gone.yaml'})",
        f"{bad}:3:11: steps[0].wait.seconds: 'soon' is not a duration; write e.g. 10s, 500ms "
        "or 2m"]
    out = subprocess.run([sys.executable, "-m", "fleetsim", "validate",
                          str(ROOT / "scenarios" / "workshop.yaml")], cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ok (9 labs, 78 steps, 8 fleets, 76 devices, target local)" in out.stdout
