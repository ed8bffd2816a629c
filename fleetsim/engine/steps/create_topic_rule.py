"""`create_topic_rule`: an AWS IoT topic rule, as the labs create it (`aws iot
create-topic-rule --rule-name JITRRule --topic-rule-payload file://...`).

The rule's payload (TopicRulePayload: `sql`, `description`, `actions`, `errorAction`,
`ruleDisabled`, `awsIotSqlVersion`) comes from a JSON file (`file`, relative to the scenario;
e.g. the workshop's `jitr-topic-rule.json`) or inline (`payload`); `sql` replaces the payload's
statement. `${NAME}` placeholders anywhere in it are filled from `values` and from what earlier
steps exported (`deploy_function`'s function ARN as the workshop's `${ARN_LAMBDA}`,
`register_ca`'s CA certificate id). The rule is described first (GetTopicRule): absent, created
(journaled before the call; clean-up deletes it); there with the same payload (an earlier
kept run), reused; with another, drift item by item (`topic_rule R: sql differs`), fixed with
ReplaceTopicRule. Planning, a payload naming values that only earlier steps' runs make
(`${ARN_LAMBDA}`) cannot be compared: an existing rule is then counted as reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from botocore.exceptions import ClientError
from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase, error_code
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call
from fleetsim.engine.placeholders import fill
from fleetsim.engine.provisioning import journaled
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import StepBase
from fleetsim.scenario.semantics import Loc, Problem, Scope

# AWS IoT answers GetTopicRule for a rule that does not exist with UnauthorizedException.
RULE_MISSING = frozenset({"UnauthorizedException", "ResourceNotFoundException"})


async def _delete_rule(clients: Any, d: dict[str, Any]) -> None:
    """DeleteTopicRule; a rule already gone (a second clean-up) is answered like a rule one
    may not delete, UnauthorizedException: ListTopicRules tells which, and a rule it does
    not list is gone (a ResourceNotFoundException for clean-up), not a failure."""
    try:
        await clients.iot.delete_topic_rule(ruleName=d["name"])
    except ClientError as e:
        if error_code(e) != "UnauthorizedException" or await _listed(clients, d["name"]):
            raise
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": (
            f"topic rule {d['name']} is not there")}}, "DeleteTopicRule") from e


async def _listed(clients: Any, name: str) -> bool:
    async for page in clients.iot.get_paginator("list_topic_rules").paginate():
        if any(r["ruleName"] == name for r in page.get("rules", [])):
            return True
    return False


TOPIC_RULE = JournalKind("topic_rule", Phase.DELETE, _delete_rule)
_COMPARED = ("sql", "description", "actions", "errorAction", "ruleDisabled", "awsIotSqlVersion")


class CreateTopicRuleStep(StepBase):
    kind: Literal["create_topic_rule"]
    rule: str = Field(pattern=r"^[a-zA-Z0-9_]+$")  # --rule-name
    file: str | None = None  # a TopicRulePayload as JSON
    payload: dict[str, Any] | None = None  # ... or inline
    sql: str | None = None  # replaces the payload's sql
    values: dict[str, str] = {}  # ${NAME} -> value (besides what earlier steps exported)

    file_fields: ClassVar[tuple[str, ...]] = ("file",)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        if (self.file is None) == (self.payload is None):
            return [(at, "give the rule's payload as 'file' or as 'payload' (one of them)")]
        return []


def rule_payload(step: CreateTopicRuleStep, exported: dict[str, str]) -> dict[str, Any]:
    """The TopicRulePayload, placeholders filled."""
    if step.file is not None:
        text, where = Path(step.file).read_text(), step.file
    else:
        text, where = json.dumps(step.payload), f"create_topic_rule {step.rule}'s payload"
    how = "the create_topic_rule step's values, or export it from an earlier step"
    values = {**exported, **step.values}
    filled = fill(text, {k: _json_safe(v) for k, v in values.items()}, where, how)
    try:
        payload = json.loads(filled)
    except ValueError as e:
        raise UserError(f"{where} is not valid JSON once filled: {e}") from e
    if not isinstance(payload, dict):
        raise UserError(f"{where} must hold a JSON object (a topic rule payload)")
    if step.sql is not None:
        payload["sql"] = fill(step.sql, values, f"create_topic_rule {step.rule}'s sql", how)
    if "sql" not in payload or "actions" not in payload:
        raise UserError(f"{where} must give the rule's 'sql' and 'actions'")
    return payload


def _json_safe(value: str) -> str:
    """A value as it may stand inside a JSON string."""
    return json.dumps(value)[1:-1]


def _differences(existing: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    """`sql differs`, ... for each field of the payload the rule holds otherwise."""
    defaults = {"description": "", "errorAction": None, "ruleDisabled": False,
                "awsIotSqlVersion": "2015-10-08"}
    return [f"{k} differs" for k in _COMPARED
            if existing.get(k, defaults.get(k)) != payload.get(k, defaults.get(k))]


async def run(ctx: RunContext, step: CreateTopicRuleStep) -> None:
    ledger = ctx.reconcile
    try:
        payload: dict[str, Any] | None = rule_payload(step, ctx.values)
    except UserError:
        if not ledger.plan:
            raise
        payload = None  # planning: values earlier steps export are not known yet
    have = await describe(ctx, "GetTopicRule", step.rule, missing=RULE_MISSING,
                          ruleName=step.rule)
    if have is None:
        ledger.create(TOPIC_RULE.name, step.rule)
        if not ledger.plan:
            await journaled(ctx.journal, TOPIC_RULE.name, {"name": step.rule},
                            api_call(ctx, "CreateTopicRule", step.rule, ruleName=step.rule,
                                     topicRulePayload=payload))
        return
    items = _differences(have["rule"], payload) if payload is not None else []
    if not items:
        ledger.reuse(TOPIC_RULE.name, step.rule)
        ctx.metrics.incr("topic_rules.reused")
        return
    ledger.drifted(TOPIC_RULE.name, step.rule, items)
    if not ledger.plan:
        await api_call(ctx, "ReplaceTopicRule", step.rule, ruleName=step.rule,
                       topicRulePayload=payload)


KIND = StepKind(CreateTopicRuleStep, run, journals=(TOPIC_RULE,), plans=True)
