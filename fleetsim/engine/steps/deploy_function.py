"""`deploy_function`: a Lambda function deployed from a folder, as the JITR lab does it.

The folder (`source`, relative to the scenario; e.g. `lambda/jitr/`) is zipped (`zip -r`, but
reproducibly: the same files give the same zip), then `aws lambda create-function --zip-file
fileb://... --runtime --handler --role --timeout --memory-size --environment`, and the step
waits until the function is Active ("Lambda function states"). A function of that name that
exists already is reused: its code updated if it differs (CodeSha256), its configuration if
that differs; it is not ours, so clean-up leaves it. `allow_rules` adds, per topic rule, the
lab's `aws lambda add-permission --principal iot.amazonaws.com --source-arn <rule ARN>
--source-account <account> --action lambda:InvokeFunction` (a rule invokes a function only if
its resource policy allows it: "AWS Lambda" rule action). `export: NAME` makes the function's
ARN `${NAME}` in later steps' files (the workshop's `${ARN_LAMBDA}`).

`role` is the function's execution role: on AWS a role Lambda can assume, able to call AWS IoT
(the lab's `$ARN_LAMBDA_ROLE`); local core takes any role ARN. `{account_id}` in it is the
caller's account (sts get-caller-identity). `creates_policies` names IoT policies the function
itself creates (the JITR function's `JITR_Policy`): written down, so clean-up deletes them.

Journaled before each call: the function (deleted at clean-up), each permission (removed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import re
import time
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase, with_retry
from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.provisioning import POLICY, journaled
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import StepBase
from fleetsim.scenario.semantics import Loc, Problem, Scope

IOT_PRINCIPAL = "iot.amazonaws.com"
ACTIVE_WAIT_S = 120.0
_ROLE = re.compile(r"^arn:aws[a-zA-Z-]*:iam::(\d{12}|\{account_id\}):role/?[a-zA-Z_0-9+=,.@\-/]+$")
_RULE_NAME = re.compile(r"^[a-zA-Z0-9_]+$")
_SKIPPED = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip holds: the same files, the same zip

FUNCTION = JournalKind(
    "function", Phase.DELETE,
    lambda c, d: c.lambda_.delete_function(FunctionName=d["name"]))
LAMBDA_PERMISSION = JournalKind(
    "lambda_permission", Phase.DETACH,
    lambda c, d: with_retry(lambda: c.lambda_.remove_permission(FunctionName=d["function"],
                                                                StatementId=d["sid"])))


class DeployFunctionStep(StepBase):
    kind: Literal["deploy_function"]
    function: str = Field(pattern=r"^[a-zA-Z0-9-_]{1,64}$")  # --function-name
    source: str  # the folder to zip, relative to the scenario
    role: str  # --role: the execution role's ARN ({account_id}: the caller's account)
    runtime: str = "python3.12"
    handler: str = "lambda_function.lambda_handler"
    timeout: int = Field(30, ge=1, le=900)  # seconds
    memory: int = Field(128, ge=128, le=10240)  # MB
    environment: dict[str, str] = {}
    allow_rules: list[str] = []  # topic rules allowed to invoke it (add-permission)
    export: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    creates_policies: list[str] = []  # IoT policies the function makes: deleted at clean-up

    dir_fields: ClassVar[tuple[str, ...]] = ("source",)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        problems: list[Problem] = []
        if not _ROLE.match(self.role):
            problems.append(((*at, "role"), "not an IAM role ARN (arn:aws:iam::<account>:"
                             "role/<name>; {account_id} stands for the caller's account)"))
        problems += [((*at, "allow_rules", i), f"{r!r} is not a topic rule name (letters, "
                      "digits and _)") for i, r in enumerate(self.allow_rules)
                     if not _RULE_NAME.match(r)]
        return problems


def package(folder: Path) -> bytes:
    """The folder as a deployment package: every file under it (caches and hidden files
    left out), paths relative to it, in sorted order with a fixed time, so that the same code
    gives the same CodeSha256."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED and not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or name.endswith(".pyc"):
                    continue
                path = Path(root) / name
                info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), _ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, path.read_bytes())
    return out.getvalue()


def code_sha256(data: bytes) -> str:
    """CodeSha256 as Lambda reports it: the package's SHA-256 in base64."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def _call(ctx: RunContext, op: str, subject: str, expected: frozenset[str] = frozenset(),
                **params: Any) -> dict[str, Any]:
    return await api_call(ctx, op, subject, client=ctx.lambda_, expected=expected, **params)


async def wait_ready(ctx: RunContext, name: str) -> dict[str, Any]:
    """Until the function is Active and no update is in progress; Failed is an error with
    Lambda's reason."""
    deadline = time.monotonic() + ACTIVE_WAIT_S
    delay = 0.1
    while True:
        config = await _call(ctx, "GetFunctionConfiguration", name, FunctionName=name)
        state, update = config.get("State", "Active"), config.get("LastUpdateStatus")
        if state == "Failed" or update == "Failed":
            reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or "-"
            raise UserError(f"function {name} failed to deploy: {reason}")
        if state == "Active" and update != "InProgress":
            return config
        if time.monotonic() > deadline:
            raise UserError(f"function {name} was not Active within {ACTIVE_WAIT_S:g} s "
                            f"(State {state}, LastUpdateStatus {update})")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def _configuration(step: DeployFunctionStep, role: str) -> dict[str, Any]:
    return {"Runtime": step.runtime, "Role": role, "Handler": step.handler,
            "Timeout": step.timeout, "MemorySize": step.memory,
            "Environment": {"Variables": dict(step.environment)}}


def _differs(config: dict[str, Any], wanted: dict[str, Any]) -> bool:
    have = {k: config.get(k) for k in ("Runtime", "Role", "Handler", "Timeout", "MemorySize")}
    have["Environment"] = {"Variables": (config.get("Environment") or {}).get("Variables")
                           or {}}
    return have != wanted


async def _create_or_update(ctx: RunContext, step: DeployFunctionStep, data: bytes,
                            wanted: dict[str, Any]) -> None:
    name = step.function
    try:
        existing = await _call(ctx, "GetFunction", name, frozenset({"ResourceNotFoundException"}),
                               FunctionName=name)
    except ApiError as e:
        if e.code != "ResourceNotFoundException":
            raise
        await journaled(ctx.journal, FUNCTION.name, {"name": name},
                        _call(ctx, "CreateFunction", name, FunctionName=name,
                              Code={"ZipFile": data}, **wanted))
        ctx.metrics.incr("functions.created")
        ctx.reconcile.create(FUNCTION.name, name)
        return
    config = existing["Configuration"]
    if config.get("CodeSha256") != code_sha256(data):
        ctx.reconcile.drifted(FUNCTION.name, name, ["code differs (CodeSha256)"])
        await wait_ready(ctx, name)
        await _call(ctx, "UpdateFunctionCode", name, FunctionName=name, ZipFile=data)
        ctx.metrics.incr("functions.code_updated")
    if _differs(config, wanted):
        await wait_ready(ctx, name)
        await _call(ctx, "UpdateFunctionConfiguration", name, FunctionName=name, **wanted)
        ctx.metrics.incr("functions.configuration_updated")
        ctx.reconcile.drifted(FUNCTION.name, name, ["configuration differs"])
    ctx.metrics.incr("functions.reused")
    ctx.reconcile.reuse(FUNCTION.name, name)


async def _allow(ctx: RunContext, name: str, rule: str, account: str) -> None:
    """add-permission for iot.amazonaws.com from the rule's ARN; a statement of that id there
    already (an earlier run) is reused if it says the same."""
    source_arn = f"arn:aws:iot:{ctx.target.region}:{account}:rule/{rule}"
    sid = f"iot-rule-{rule}"
    try:
        await journaled(ctx.journal, LAMBDA_PERMISSION.name, {"function": name, "sid": sid},
                        _call(ctx, "AddPermission", name,
                              frozenset({"ResourceConflictException"}), FunctionName=name,
                              StatementId=sid, Action="lambda:InvokeFunction",
                              Principal=IOT_PRINCIPAL, SourceArn=source_arn,
                              SourceAccount=account))
    except ApiError as e:
        if e.code != "ResourceConflictException":
            raise
        policy = (await _call(ctx, "GetPolicy", name, FunctionName=name))["Policy"]
        if source_arn not in policy:
            raise UserError(f"function {name} has a permission {sid} for another source; "
                            f"remove it (aws lambda remove-permission --function-name {name} "
                            f"--statement-id {sid})") from e
        ctx.reconcile.reuse(LAMBDA_PERMISSION.name, f"{name} {sid}")
        return
    ctx.reconcile.create(LAMBDA_PERMISSION.name, f"{name} {sid}")


async def run(ctx: RunContext, step: DeployFunctionStep) -> None:
    if ctx.lambda_ is None:
        raise UserError("deploy_function needs a Lambda client, which this run has not")
    folder = Path(step.source)
    if not folder.is_dir():
        raise UserError(f"deploy_function.source: {folder} is not a folder (the function's "
                        "code, e.g. lambda/jitr)")
    data = package(folder)
    if not data or len(data) <= 22:  # an empty zip is its end record alone
        raise UserError(f"deploy_function.source: {folder} holds no files")
    account = (await api_call(ctx, "GetCallerIdentity", client=ctx.sts))["Account"]
    for policy in step.creates_policies:
        ctx.journal.record(POLICY.name, name=policy)
    wanted = _configuration(step, step.role.replace("{account_id}", account))
    await _create_or_update(ctx, step, data, wanted)
    config = await wait_ready(ctx, step.function)
    for rule in step.allow_rules:
        await _allow(ctx, step.function, rule, account)
    if step.export:
        ctx.values[step.export] = config["FunctionArn"]


KIND = StepKind(DeployFunctionStep, run, journals=(FUNCTION, LAMBDA_PERMISSION, POLICY))
