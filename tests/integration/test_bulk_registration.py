"""The workshop's "Bulk Device Provisioning" lab with the AWS CLI verbatim (endpoint aside):
`aws s3 cp` of bulk.json, start-thing-registration-task with templateBody.json, describe until
Completed, list the reports, download RESULTS with its presigned URL and read it as the lab's
`bulk-result.py` does; a file with one bad line; a task interrupted by a restart.

Local core runs in a thread of this process (`ThreadCore`) so that, until the provisioning
template engine is merged, a test double stands in for it; with the engine merged, the real
one is used and these tests run unchanged."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.awscli import AWS
from tests.conftest import aws_env
from tests.helpers import aws_client
from tests.provisioning_double import ThreadCore

pytestmark = pytest.mark.interop
TEMPLATE = Path(__file__).resolve().parents[2] / "scenarios" / "workshop" / "templateBody.json"
ROLE = "arn:aws:iam::123456789012:role/IoTProvisioningRole"


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadCore]:
    running = ThreadCore(tmp_path_factory.mktemp("bulk") / "core")
    cli(running, Path("."), "iot", "create-thing-group", "--thing-group-name", "bulk-group")
    cli(running, Path("."), "iot", "create-thing-type", "--thing-type-name", "bulk-type")
    cli(running, Path("."), "s3", "mb", "s3://ws-bulk")
    yield running
    running.stop()


def cli(core: Any, cwd: Path, *args: str) -> Any:
    out = subprocess.run([str(AWS), *args], env=aws_env(core), cwd=cwd, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    try:
        return json.loads(out)
    except ValueError:
        return out


def csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bulk")])).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def bulk_file(path: Path, names: list[str], bad: dict[int, str] | None = None) -> None:
    lines = [json.dumps({"ThingName": n, "SerialNumber": str(i), "CSR": csr()})
             for i, n in enumerate(names)]
    for offset, text in (bad or {}).items():
        lines[offset] = text
    path.write_text("\n".join(lines) + "\n")


def wait_done(core: Any, cwd: Path, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        task: dict[str, Any] = cli(core, cwd, "iot", "describe-thing-registration-task",
                                   "--task-id", task_id)
        if task["status"] not in ("InProgress", "Cancelling") or time.monotonic() > deadline:
            return task
        time.sleep(0.2)


def download(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=10) as response:  # as the lab's wget does
        return [json.loads(line) for line in response.read().decode().splitlines()]


def start(core: Any, cwd: Path, key: str) -> str:
    cli(core, cwd, "s3", "cp", key, "s3://ws-bulk/")
    out = cli(core, cwd, "iot", "start-thing-registration-task",
              "--template-body", f"file://{TEMPLATE}", "--input-file-bucket", "ws-bulk",
              "--input-file-key", key, "--role-arn", ROLE)
    return str(out["taskId"])


def test_bulk_lab_verbatim(core: ThreadCore, tmp_path: Path) -> None:
    names = [f"bulky{i}" for i in range(20)]
    bulk_file(tmp_path / "bulk.json", names)
    task_id = start(core, tmp_path, "bulk.json")
    assert "bulk.json" in cli(core, tmp_path, "s3", "ls", "s3://ws-bulk/")
    task = wait_done(core, tmp_path, task_id)
    assert task["status"] == "Completed", task
    assert (task["successCount"], task["failureCount"], task["percentageProgress"]) == (20, 0, 100)
    errors = cli(core, tmp_path, "iot", "list-thing-registration-task-reports",
                 "--report-type", "ERRORS", "--task-id", task_id)
    assert errors["resourceLinks"] == [] and errors["reportType"] == "ERRORS"
    results = cli(core, tmp_path, "iot", "list-thing-registration-task-reports",
                  "--task-id", task_id, "--report-type", "RESULTS")
    [link] = results["resourceLinks"]
    lines = download(link)
    assert sorted(line["offset"] for line in lines) == list(range(20))
    for line in lines:  # what bulk-result.py reads
        thing = line["response"]["ResourceArns"]["thing"].split("/")[1]
        assert thing == f"bulky{line['offset']}"
        cert = x509.load_pem_x509_certificate(line["response"]["CertificatePem"].encode())
        assert cert.public_key() is not None
    listed = {t["thingName"] for t in cli(core, tmp_path, "iot", "list-things")["things"]}
    assert set(names) <= listed
    assert task_id in cli(core, tmp_path, "iot", "list-thing-registration-tasks")["taskIds"]


def test_one_bad_line_is_one_error_line(core: ThreadCore, tmp_path: Path) -> None:
    names = [f"mixed{i}" for i in range(5)]
    bulk_file(tmp_path / "mixed.json", names, bad={2: '{"ThingName": "mixed2", "CSR": 7'})
    task = wait_done(core, tmp_path, start(core, tmp_path, "mixed.json"))
    assert (task["status"], task["successCount"], task["failureCount"]) == ("Completed", 4, 1)
    iot = aws_client(core.api_url)
    [errors] = iot.list_thing_registration_task_reports(
        taskId=task["taskId"], reportType="ERRORS")["resourceLinks"]
    [line] = download(errors)
    assert line["offset"] == 2 and line["errorCode"] == "InvalidRequestException"
    assert "not valid JSON" in line["errorMessage"]
    [results] = iot.list_thing_registration_task_reports(
        taskId=task["taskId"], reportType="RESULTS")["resourceLinks"]
    assert sorted(r["offset"] for r in download(results)) == [0, 1, 3, 4]
    assert iot.describe_thing(thingName="mixed4")["thingName"] == "mixed4"


def test_missing_input_file_fails_the_task(core: ThreadCore, tmp_path: Path) -> None:
    iot = aws_client(core.api_url)
    task_id = iot.start_thing_registration_task(
        templateBody=TEMPLATE.read_text(), inputFileBucket="ws-bulk", inputFileKey="nope.json",
        roleArn=ROLE)["taskId"]
    task = wait_done(core, tmp_path, task_id)
    assert task["status"] == "Failed"
    assert "s3://ws-bulk/nope.json cannot be read" in task["message"]


def test_interrupted_task_resumes_after_restart(tmp_path: Path) -> None:
    """A task InProgress when local core stopped (two of its five lines done) is resumed at
    the next start: the other three lines provision, none twice."""
    state = tmp_path / "core"
    first = ThreadCore(state)
    try:
        bulk_file(tmp_path / "r.json", [f"resume{i}" for i in range(5)])
        cli(first, tmp_path, "iot", "create-thing-group", "--thing-group-name", "bulk-group")
        cli(first, tmp_path, "iot", "create-thing-type", "--thing-type-name", "bulk-type")
        cli(first, tmp_path, "s3", "mb", "s3://ws-resume")
        cli(first, tmp_path, "s3", "cp", "r.json", "s3://ws-resume/")
    finally:
        first.stop()
    db = sqlite3.connect(state / "state.db")
    with db:
        db.execute("INSERT INTO registration_tasks (task_id, account_id, region, status, "
                   "template_body, input_bucket, input_key, role_arn, created, last_modified, "
                   "total, success_count, failure_count) VALUES ('t-1', '123456789012', "
                   "'us-east-1', 'InProgress', ?, 'ws-resume', 'r.json', ?, 1, 1, 5, 2, 0)",
                   (TEMPLATE.read_text(), ROLE))
        for offset in (0, 1):
            db.execute("INSERT INTO registration_task_lines VALUES ('t-1', ?, 'RESULTS', ?)",
                       (offset, json.dumps({"response": {}, "offset": offset})))
    db.close()
    second = ThreadCore(state)
    try:
        task = wait_done(second, tmp_path, "t-1")
        assert (task["status"], task["successCount"], task["failureCount"]) == \
            ("Completed", 5, 0)
        names = {t["thingName"] for t in aws_client(second.api_url).list_things()["things"]}
        assert names == {"resume2", "resume3", "resume4"}  # 0 and 1 were done before
    finally:
        second.stop()


def test_only_one_task_at_a_time_and_stop(core: ThreadCore, tmp_path: Path) -> None:
    """A second start while a task runs is refused; a stopped task ends Cancelled with what it
    did so far. (If the first task finishes before the second call, which a loaded machine
    cannot cause but a fast one might, the second start must then succeed instead.)"""
    bulk_file(tmp_path / "many.json", [f"many{i}" for i in range(300)])
    first = start(core, tmp_path, "many.json")
    iot = aws_client(core.api_url)
    try:
        second = iot.start_thing_registration_task(
            templateBody="{}", inputFileBucket="ws-bulk", inputFileKey="none.json",
            roleArn=ROLE)["taskId"]
    except iot.exceptions.InvalidRequestException as e:
        assert "Only one bulk registration task can run at a time" in str(e)
        assert f"task {first} is InProgress" in str(e)
        iot.stop_thing_registration_task(taskId=first)
        task = wait_done(core, tmp_path, first)
        assert task["status"] == "Cancelled"
        assert task["successCount"] + task["failureCount"] < 300
        with pytest.raises(iot.exceptions.InvalidRequestException):
            iot.stop_thing_registration_task(taskId=first)
    else:
        assert wait_done(core, tmp_path, first)["status"] == "Completed"
        wait_done(core, tmp_path, second)
