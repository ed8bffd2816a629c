"""The real `fleetsim` command, as a user runs it, answers bad input and a bad environment with
one sentence (and the right exit code), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.metrics import Metrics, write_json
from fleetsim.pki import CertificateAuthority, certificate_pem, private_key_pem
from tests.conftest import aws_env

FLEETSIM = str(Path(sys.executable).parent / "fleetsim")  # the console script users run
VALID = "name: x\nsteps: [{wait: 0s}]\n"


def fleetsim(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEETSIM, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def one_sentence(out: subprocess.CompletedProcess[str]) -> str:
    """stderr, which must be a single line and no traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_version(tmp_path: Path) -> None:
    out = fleetsim("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "fleetsim 0.1.0"


def test_a_scenario_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_bytes(b"name: caf\xe9\nsteps: [{wait: 0s}]\n")
    out = fleetsim("validate", "s.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert one_sentence(out).startswith("s.yaml:1:1: the file is not UTF-8 text")


def test_a_format_that_cannot_format_fails_validate(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: x\nfleets: [{name: a, prefix: p, count: 2, "
                                     "thing_name: '{prefix}-{index:xyz}'}]\n"
                                     "steps: [{create_things: a}]\n")
    out = fleetsim("validate", "s.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "'xyz' is not a format for index" in one_sentence(out)


@pytest.mark.parametrize("command", [["validate", "s.yaml"], ["local", "serve"]])
def test_a_port_variable_that_is_not_a_number(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "s.yaml").write_text(VALID)
    out = fleetsim(*command, cwd=tmp_path, env={"FLEETSIM_LOCAL_API_PORT": "abc"})
    if command[0] == "validate":  # the variable is none of its business
        assert out.returncode == 0, out.stderr
        return
    assert out.returncode == 1
    assert one_sentence(out) == ("fleetsim: $FLEETSIM_LOCAL_API_PORT: 'abc' is not a port "
                                 "number (0-65535; 0 = any free port)")


@pytest.mark.parametrize("command", [["local", "serve"], ["run", "s.yaml"]])
@pytest.mark.parametrize("option", ["--api-port", "--mqtt-port"])
def test_a_port_out_of_range_is_refused(tmp_path: Path, command: list[str],
                                        option: str) -> None:
    (tmp_path / "s.yaml").write_text(VALID)
    out = fleetsim(*command, option, "99999", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith(
        f"argument {option}: 99999 is out of range: a port is 0-65535 (0 = any free port)")


@pytest.mark.parametrize("command", [["local", "serve"], ["run", "s.yaml"], ["cleanup"]])
def test_a_state_dir_that_is_a_file(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "s.yaml").write_text(VALID)
    (tmp_path / "state").write_text("not a directory")
    out = fleetsim(*command, "--state-dir", "state", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith(
        "argument --state-dir: state exists and is not a directory")


def test_a_garbage_state_db(tmp_path: Path) -> None:
    state = tmp_path / "core"
    state.mkdir()
    (state / "state.db").write_bytes(os.urandom(8192))
    out = fleetsim("local", "serve", "--state-dir", "core", "--api-port", "0", "--mqtt-port",
                   "0", cwd=tmp_path)
    assert out.returncode == 1
    assert one_sentence(out).startswith(
        "fleetsim: core/state.db is not a local core database (file is not a database): "
        "move it away")


@pytest.mark.parametrize(("name", "partner"), [("root-ca.key", "root.ca.bundle.pem"),
                                              ("server.pem", "server.key")])
def test_a_truncated_key_or_certificate_in_the_state_dir(tmp_path: Path, name: str,
                                                         partner: str) -> None:
    state = tmp_path / "core"
    state.mkdir()
    (state / name).write_text("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI")
    ca = CertificateAuthority.create("a root")  # the partner is fine
    (state / partner).write_bytes(private_key_pem(ca.key) if partner.endswith(".key")
                                  else certificate_pem(ca.cert))
    out = fleetsim("local", "serve", "--state-dir", "core", "--api-port", "0", "--mqtt-port",
                   "0", cwd=tmp_path)
    assert out.returncode == 1
    what = "private key" if name.endswith(".key") else "certificate"
    assert one_sentence(out).startswith(f"fleetsim: core/{name} is not a readable PEM {what}")


def test_an_unknown_aws_profile(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: x\ntarget: {kind: aws, region: us-east-1, "
                                     "profile: no-such-profile}\nsteps: [{wait: 0s}]\n")
    out = fleetsim("run", "s.yaml", cwd=tmp_path,
                   env={"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE":
                        "/dev/null"})
    assert out.returncode == 1
    assert one_sentence(out) == ("fleetsim: AWS: The config profile (no-such-profile) could "
                                 "not be found")


def summary_file(path: Path, run_id: str, publishes: int) -> Path:
    metrics = Metrics()
    with metrics.step("telemetry"):
        for _ in range(publishes):
            metrics.record("mqtt.publish", 1000)
    write_json(path, metrics.snapshot(), run_id=run_id, passed=True)
    return path


def test_report_of_two_files_compares_them_side_by_side(tmp_path: Path) -> None:
    summary_file(tmp_path / "a.json", "run-a", 3)
    summary_file(tmp_path / "b.json", "run-b", 5)
    out = fleetsim("report", "a.json", "b.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Comparison of 2 summaries"
    assert lines[1].split() == ["a.json", "b.json"]
    rows = {line.split()[0] + " " + line.split()[1]: line.split()[2:] for line in lines[2:]
            if len(line.split()) >= 4}
    assert rows["mqtt.publish ok"] == ["3", "5"]
    assert rows["msgs sent/s"] == ["(mean)", "3.0", "5.0"]


def test_merging_a_summary_with_itself_is_refused(tmp_path: Path) -> None:
    summary_file(tmp_path / "a.json", "run-a", 3)
    (tmp_path / "copy.json").write_text((tmp_path / "a.json").read_text())
    for files in (["a.json", "a.json"], ["a.json", "copy.json"]):
        out = fleetsim("report", "--merge", *files, cwd=tmp_path)
        assert out.returncode == 1
        assert one_sentence(out) == (
            f"fleetsim: a.json and {files[1]} are both run run-a: merging a summary with "
            "itself would count it twice; merge the summaries of different shards")


PERSISTENT = """\
name: damaged
fleets: [{name: keep, prefix: keeper, count: 1, identities: persistent}]
steps:
  - provision: {fleet: keep, policy: damaged-policy}
"""


def test_a_damaged_persistent_identity(core: RunningLocalCore, tmp_path: Path) -> None:
    fleet = tmp_path / "state" / "identities" / "damaged" / "keep"
    fleet.mkdir(parents=True)
    (fleet / "keeper-0.key").write_text("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI")
    (fleet / "keeper-0.json").write_text(json.dumps({
        "fleet": "keep", "index": 0, "thing_name": "keeper-0", "key_type": "ec-p256",
        "certificate_id": "ab" * 32, "certificate_arn": None}))
    (tmp_path / "s.yaml").write_text(PERSISTENT)
    (tmp_path / "state" / "localcore").symlink_to(core.state_dir)
    out = fleetsim("run", "s.yaml", "--state-dir", "state", cwd=tmp_path, env=aws_env(core),
                   timeout=120)
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    assert ("stored identity file state/identities/damaged/keep/keeper-0.key is not a "
            "readable PEM private key") in out.stdout + out.stderr
