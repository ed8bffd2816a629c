"""The lambda feature's contract with other features, in a local core run in this process:
`invoke_as_service` allowed and denied by the function's resource policy, what it writes to
the function's log group (read back through the logs API), and functions surviving a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from fleetsim.localcore.core import LocalCore, LocalCoreConfig
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.scope import Scope
from tests.lambda_testing import ROLE, package

SCOPE = Scope("123456789012", "us-east-1")
RULE = "arn:aws:iot:us-east-1:123456789012:rule/JITRRule"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:target"


async def _started(state: Path) -> LocalCore:
    core = LocalCore(LocalCoreConfig(state_dir=state, api_port=0, mqtt_port=0))
    await core.start()
    return core


async def _stopped(core: LocalCore) -> None:
    await core.services.get("lambda").close()
    await core.stop()


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LocalCore]:
    c = await _started(tmp_path / "state")
    yield c
    await _stopped(c)


def _client(core: LocalCore) -> Any:
    assert core.endpoints is not None
    session = aioboto3.Session(aws_access_key_id="x", aws_secret_access_key="x",
                               region_name="us-east-1")
    return session.client("lambda", endpoint_url=core.endpoints.api_url)


async def _create_target(core: LocalCore) -> None:
    async with _client(core) as lam:
        await lam.create_function(FunctionName="target", Runtime="python3.12", Role=ROLE,
                                  Handler="lambda_function.lambda_handler", Timeout=5,
                                  Code={"ZipFile": package()})
        await lam.add_permission(FunctionName="target", StatementId="iot",
                                 Action="lambda:InvokeFunction",
                                 Principal="iot.amazonaws.com", SourceArn=RULE,
                                 SourceAccount="123456789012")


async def _logged(core: LocalCore, text: str) -> list[dict[str, Any]]:
    """The events of /aws/lambda/target once one holds `text`, read through the logs API."""
    assert core.endpoints is not None
    session = aioboto3.Session(aws_access_key_id="x", aws_secret_access_key="x",
                               region_name="us-east-1")
    async with session.client("logs", endpoint_url=core.endpoints.api_url) as logs:
        for _ in range(400):
            try:
                page = await logs.filter_log_events(logGroupName="/aws/lambda/target")
            except logs.exceptions.ResourceNotFoundException:
                page = {"events": []}
            events: list[dict[str, Any]] = page["events"]
            if any(text in e["message"] for e in events):
                return events
            await asyncio.sleep(0.025)
    raise AssertionError(f"{text!r} never logged in /aws/lambda/target")


async def test_invoke_as_service_runs_the_function_when_the_policy_allows(
        core: LocalCore, tmp_path: Path) -> None:
    await _create_target(core)
    service = core.services.get("lambda")
    marker = tmp_path / "ran"
    payload = f'{{"mode": "touch", "path": "{marker}"}}'.encode()
    await service.invoke_as_service(SCOPE, ARN, payload, principal="iot.amazonaws.com",
                                    source_arn=RULE, source_account="123456789012")
    events = await _logged(core, "REPORT RequestId")
    assert marker.read_text() == "x"
    assert {e["logStreamName"] for e in events} == {events[0]["logStreamName"]}
    assert "/[$LATEST]" in events[0]["logStreamName"]
    texts = [e["message"] for e in events]
    assert texts[0] == "init phase" and texts[1].startswith("START RequestId: ")
    assert texts[-2].startswith("END RequestId: ") and texts[-1].startswith("REPORT ")
    assert "Init Duration: " in texts[-1]
    assert any(t.startswith("event {") for t in texts)
    assert all(e["timestamp"] > 1_600_000_000_000 for e in events)


@pytest.mark.parametrize(("principal", "source_arn", "account"), [
    ("sns.amazonaws.com", RULE, "123456789012"),  # another principal
    ("iot.amazonaws.com", RULE + "2", "123456789012"),  # another rule
    ("iot.amazonaws.com", RULE, "210987654321"),  # another account
])
async def test_invoke_as_service_is_denied_otherwise(core: LocalCore, principal: str,
                                                     source_arn: str, account: str) -> None:
    await _create_target(core)
    with pytest.raises(AwsError) as e:
        await core.services.get("lambda").invoke_as_service(
            SCOPE, ARN, b"{}", principal=principal, source_arn=source_arn,
            source_account=account)
    assert e.value.code == "AccessDeniedException"


async def test_invoke_as_service_of_an_unknown_function(core: LocalCore) -> None:
    with pytest.raises(AwsError) as e:
        await core.services.get("lambda").invoke_as_service(
            SCOPE, ARN, b"{}", principal="iot.amazonaws.com", source_arn=RULE,
            source_account="123456789012")
    assert e.value.code == "ResourceNotFoundException"


async def test_functions_and_permissions_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = await _started(state)
    try:
        await _create_target(first)
    finally:
        await _stopped(first)
    second = await _started(state)
    try:
        async with _client(second) as lam:
            policy = await lam.get_policy(FunctionName="target")
            assert '"Sid":"iot"' in policy["Policy"]
            r = await lam.invoke(FunctionName="target", Payload=b"{}")
            assert (await r["Payload"].read()).startswith(b'{"request_id"')
    finally:
        await _stopped(second)


async def test_functions_run_when_the_state_dir_is_relative(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fleetsim run`'s default state dir is `.fleetsim`, relative: a worker runs in its task
    folder, so the code's folder on its path must be absolute (it was not: the JITR lab of
    `make demo` failed with Runtime.ImportModuleError)."""
    monkeypatch.chdir(tmp_path)
    core = await _started(Path("state"))
    try:
        await _create_target(core)
        async with _client(core) as lam:
            out = await lam.invoke(FunctionName="target", Payload=b'{"mode": "echo"}')
            body = await out["Payload"].read()
            assert "FunctionError" not in out, body
            described = await lam.get_function(FunctionName="target")
        assert described["Code"]["Location"].startswith(f"file://{tmp_path}/state/lambda/")
    finally:
        await _stopped(core)
