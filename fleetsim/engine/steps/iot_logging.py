"""`iot_logging`: AWS IoT v2 logging as the "Enable Logging" and "Fine-Grained Logging" labs
set it up, and put back as it was at clean-up.

- `role`: the role AWS IoT assumes to write to CloudWatch Logs, created as the lab's console
  steps make it ("AWS service" IoT: a trust policy for `iot.amazonaws.com`, the AWS managed
  policy `AWSIoTLogging` attached); a role of that name already there is used as it is (and
  left in place).
- `default_level`: set-v2-logging-options with that role and level.
- `levels`: set-v2-logging-level per target (THING_GROUP, CLIENT_ID, SOURCE_IP,
  PRINCIPAL_ID; AWS IoT developer guide, "Configure resource-specific logging in AWS IoT").

What it changes is account-wide, so the options and each target's level as they were before
the run are journaled first and restored at clean-up (a level the target did not have is
deleted; options that were never configured, GetV2LoggingOptions' NotConfiguredException,
are put back as disabled: the API has no way to unset them).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase
from fleetsim.control.clients import AwsClients
from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call, api_pages
from fleetsim.engine.provisioning import journaled
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase, Strict
from fleetsim.scenario.semantics import Loc, Problem, Scope

LOGGING_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AWSIoTLogging"
# The trust policy the IAM console gives a role for the AWS service "IoT".
TRUST_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}
# IAM is eventually consistent: AWS IoT may not be able to assume a role just created
# (SetV2LoggingOptions answers InvalidRequestException) for some seconds.
ROLE_PROPAGATION_S = 60.0

LogLevel = Literal["DEBUG", "INFO", "ERROR", "WARN", "DISABLED"]


class LogTarget(Strict):
    target_type: Literal["THING_GROUP", "CLIENT_ID", "SOURCE_IP", "PRINCIPAL_ID"]
    target_name: str = Field(min_length=1)
    level: LogLevel


class IotLoggingStep(StepBase):
    kind: Literal["iot_logging"]
    role: str = Field(default="AWSIoTAccessServices", pattern=r"^[\w+=,.@-]{1,64}$")
    default_level: LogLevel | None = None
    disable_all: bool = False
    levels: list[LogTarget] = Field(default_factory=list)

    scalar_field: ClassVar[str | None] = "default_level"

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        if self.default_level is None and not self.disable_all and not self.levels:
            return [(at, "give default_level, disable_all or levels: there is nothing to set")]
        return []


async def _delete_role(clients: AwsClients, d: dict[str, Any]) -> None:
    """A role is deleted once no policy is attached to it or in it (IAM: DeleteConflict)."""
    iam, name = clients.iam, d["name"]
    attached = await iam.list_attached_role_policies(RoleName=name)
    for policy in attached.get("AttachedPolicies", []):
        await iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    inline = await iam.list_role_policies(RoleName=name)
    for policy_name in inline.get("PolicyNames", []):
        await iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
    await iam.delete_role(RoleName=name)


async def _restore_options(clients: AwsClients, d: dict[str, Any]) -> None:
    previous = d["previous"]
    if previous is None:  # never configured before the run
        previous = {"disableAllLogs": True, "defaultLogLevel": "DISABLED"}
    await clients.iot.set_v2_logging_options(**previous)


async def _restore_level(clients: AwsClients, d: dict[str, Any]) -> None:
    if d["previous"] is None:
        await clients.iot.delete_v2_logging_level(targetType=d["type"], targetName=d["name"])
    else:
        await clients.iot.set_v2_logging_level(
            logTarget={"targetType": d["type"], "targetName": d["name"]},
            logLevel=d["previous"])


IAM_ROLE = JournalKind("iam_role", Phase.DELETE, _delete_role)
LOGGING_OPTIONS = JournalKind("v2_logging_options", Phase.RESTORE, _restore_options,
                              first_only=True)
LOGGING_LEVEL = JournalKind("v2_logging_level", Phase.RESTORE, _restore_level)


async def ensure_role(ctx: RunContext, name: str) -> tuple[str | None, bool]:
    """The role's ARN (None: planning, it would be created), and whether this run created
    it. A role of that name already there is reused (GetRole first)."""
    have = await describe(ctx, "GetRole", name, client=ctx.iam, missing={"NoSuchEntity"},
                          RoleName=name)
    if have is not None:
        ctx.reconcile.reuse(IAM_ROLE.name, name)
        return str(have["Role"]["Arn"]), False
    ctx.reconcile.create(IAM_ROLE.name, name)
    if ctx.reconcile.plan:
        return None, True
    try:
        created = await journaled(ctx.journal, IAM_ROLE.name, {"name": name}, api_call(
            ctx, "CreateRole", name, client=ctx.iam, expected={"EntityAlreadyExists"},
            RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
            Description="AWS IoT writes its logs to CloudWatch Logs (fleetsim)"))
    except ApiError as e:
        if e.code != "EntityAlreadyExists":
            raise
        role = await api_call(ctx, "GetRole", name, client=ctx.iam, RoleName=name)
        return str(role["Role"]["Arn"]), False
    await api_call(ctx, "AttachRolePolicy", name, client=ctx.iam, RoleName=name,
                   PolicyArn=LOGGING_POLICY_ARN)
    return str(created["Role"]["Arn"]), True


async def _previous_options(ctx: RunContext) -> dict[str, Any] | None:
    try:
        current = await api_call(ctx, "GetV2LoggingOptions",
                                 expected={"NotConfiguredException"})
    except ApiError as e:
        if e.code != "NotConfiguredException":
            raise
        return None
    return {k: current[k] for k in ("roleArn", "defaultLogLevel", "disableAllLogs")
            if k in current}


async def _set_options(ctx: RunContext, params: dict[str, Any], new_role: bool) -> None:
    deadline = time.monotonic() + (ROLE_PROPAGATION_S if new_role else 0)
    while True:
        try:
            await api_call(ctx, "SetV2LoggingOptions", expected={"InvalidRequestException"},
                           **params)
            return
        except ApiError as e:
            if e.code != "InvalidRequestException" or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(2)


async def _current_levels(ctx: RunContext) -> dict[tuple[str, str], str]:
    """The log levels set per target. Logging not configured (ListV2LoggingLevels answers
    NotConfiguredException) while planning after a step or lab that would configure it: none
    yet, as the run would find them."""
    levels: dict[tuple[str, str], str] = {}
    try:
        async for page in api_pages(ctx, "ListV2LoggingLevels",
                                    expected={"NotConfiguredException"}):
            for c in page.get("logTargetConfigurations", []):
                target = c["logTarget"]
                if target.get("targetName") is not None:
                    levels[(target["targetType"], target["targetName"])] = c["logLevel"]
    except ApiError as e:
        if not (e.code == "NotConfiguredException" and ctx.reconcile.plan
                and ctx.reconcile.planned(LOGGING_OPTIONS.name)):
            raise
    return levels


async def run(ctx: RunContext, step: IotLoggingStep) -> None:
    """Each setting already as declared is reused (nothing journaled or changed); the others
    are set, counted as created, what they were journaled first for clean-up to restore."""
    ledger = ctx.reconcile
    if step.default_level is not None or step.disable_all:
        arn, new_role = await ensure_role(ctx, step.role)
        previous = await _previous_options(ctx)
        params: dict[str, Any] = {"roleArn": arn, "disableAllLogs": step.disable_all}
        if step.default_level is not None:
            params["defaultLogLevel"] = step.default_level
        if previous is not None and all(previous.get(k) == v for k, v in params.items()):
            ledger.reuse(LOGGING_OPTIONS.name, step.default_level or "disabled")
        else:
            ledger.create(LOGGING_OPTIONS.name, step.default_level or "disabled")
            if not ledger.plan:
                ctx.journal.record(LOGGING_OPTIONS.name, previous=previous)
                await _set_options(ctx, params, new_role)
    if not step.levels:
        return
    current = await _current_levels(ctx)
    for t in step.levels:
        key = (t.target_type, t.target_name)
        if current.get(key) == t.level:
            ledger.reuse(LOGGING_LEVEL.name, f"{t.target_type} {t.target_name}")
            continue
        ledger.create(LOGGING_LEVEL.name, f"{t.target_type} {t.target_name}")
        if ledger.plan:
            continue
        if ("v2_logging_level", *key) not in ctx.journaled:  # the level before the run only
            ctx.journaled.add(("v2_logging_level", *key))
            ctx.journal.record(LOGGING_LEVEL.name, type=t.target_type, name=t.target_name,
                               previous=current.get(key))
        await api_call(ctx, "SetV2LoggingLevel", t.target_name,
                       logTarget={"targetType": t.target_type, "targetName": t.target_name},
                       logLevel=t.level)


KIND = StepKind(IotLoggingStep, run, journals=(IAM_ROLE, LOGGING_OPTIONS, LOGGING_LEVEL),
                plans=True)
