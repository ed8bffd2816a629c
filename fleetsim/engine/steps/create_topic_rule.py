"""`create_topic_rule`: an AWS IoT topic rule, as the labs create it (`aws iot
create-topic-rule --rule-name JITRRule --topic-rule-payload file://...`).

The rule's payload (TopicRulePayload: `sql`, `description`, `actions`, `errorAction`,
`ruleDisabled`, `awsIotSqlVersion`) comes from a JSON file (`file`, relative to the scenario;
e.g. the workshop's `jitr-topic-rule.json`) or inline (`payload`); `sql` replaces the payload's
statement. `${NAME}` placeholders anywhere in it are filled from `values` and from what earlier
steps exported (`deploy_function`'s function ARN as the workshop's `${ARN_LAMBDA}`,
`register_ca`'s CA certificate id). A rule of that name with the same payload (an earlier run)
is reused; with another payload it is an error: it is not this scenario's to replace.
Journaled before the call; clean-up deletes the rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase
from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.placeholders import fill
from fleetsim.engine.provisioning import journaled
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import StepBase
from fleetsim.scenario.semantics import Loc, Problem, Scope

TOPIC_RULE = JournalKind(
    "topic_rule", Phase.DELETE, lambda c, d: c.iot.delete_topic_rule(ruleName=d["name"]))
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


def _same(existing: dict[str, Any], payload: dict[str, Any]) -> bool:
    defaults = {"description": "", "errorAction": None, "ruleDisabled": False,
                "awsIotSqlVersion": "2015-10-08"}
    return all(existing.get(k, defaults.get(k)) == payload.get(k, defaults.get(k))
               for k in _COMPARED)


async def run(ctx: RunContext, step: CreateTopicRuleStep) -> None:
    payload = rule_payload(step, ctx.values)
    exists = frozenset({"ResourceAlreadyExistsException"})
    try:
        await journaled(ctx.journal, TOPIC_RULE.name, {"name": step.rule},
                        api_call(ctx, "CreateTopicRule", step.rule, expected=exists,
                                 ruleName=step.rule, topicRulePayload=payload))
    except ApiError as e:
        if e.code not in exists:
            raise
        existing = (await api_call(ctx, "GetTopicRule", step.rule, ruleName=step.rule))["rule"]
        if not _same(existing, payload):
            raise UserError(f"topic rule {step.rule} exists with another payload; delete it "
                            f"(aws iot delete-topic-rule --rule-name {step.rule}) or choose "
                            "another name") from e
        ctx.metrics.incr("topic_rules.reused")


KIND = StepKind(CreateTopicRuleStep, run, journals=(TOPIC_RULE,))
