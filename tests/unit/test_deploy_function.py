"""deploy_function's deployment package and the topic rule's placeholders: pure parts."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from fleetsim.engine.steps.create_topic_rule import CreateTopicRuleStep, rule_payload
from fleetsim.engine.steps.deploy_function import code_sha256, package
from fleetsim.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_the_same_folder_gives_the_same_package(tmp_path: Path) -> None:
    (tmp_path / "lambda_function.py").write_text("def lambda_handler(e, c): return 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "util.py").write_text("X = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    first = package(tmp_path)
    (tmp_path / "pkg" / "util.py").touch()  # a newer time, the same content
    assert code_sha256(package(tmp_path)) == code_sha256(first)
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == ["lambda_function.py", "pkg/util.py"]
    (tmp_path / "lambda_function.py").write_text("def lambda_handler(e, c): return 2\n")
    assert code_sha256(package(tmp_path)) != code_sha256(first)


def test_the_workshop_rule_is_filled_from_exported_values() -> None:
    step = CreateTopicRuleStep(
        kind="create_topic_rule", rule="JITRRule",
        file=str(ROOT / "scenarios" / "workshop" / "jitr-topic-rule.json"),
        sql="SELECT * FROM '$aws/events/certificates/registered/${CA}' "
            "WHERE certificateStatus = \"PENDING_ACTIVATION\"")
    payload = rule_payload(step, {"ARN_LAMBDA": "arn:aws:lambda:us-east-1:1:function:jitr",
                                  "CA": "abc"})
    assert payload["actions"] == [
        {"lambda": {"functionArn": "arn:aws:lambda:us-east-1:1:function:jitr"}}]
    assert payload["sql"].startswith("SELECT * FROM '$aws/events/certificates/registered/abc'")
    assert json.dumps(payload)  # still JSON


def test_a_placeholder_without_a_value_names_it() -> None:
    step = CreateTopicRuleStep(kind="create_topic_rule", rule="R",
                               payload={"sql": "SELECT * FROM 'a'",
                                        "actions": [{"lambda": {"functionArn": "${ARN}"}}]})
    with pytest.raises(UserError, match=r"uses \$\{ARN\}"):
        rule_payload(step, {})
