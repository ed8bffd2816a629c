"""HTTP handlers: the topic rule operations of the `iot` API."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.rules.rule import sql_version
from fleetsim.localcore.features.rules.service import RulesService
from fleetsim.localcore.features.rules.store import RuleRow
from fleetsim.localcore.scope import Scope

operations = Operations()
iot = operations.iot
C = Call[RulesService]


@iot("CreateTopicRule")
def create_topic_rule(call: C, p: dict[str, Any]) -> None:
    call.service.create(call.scope, p["ruleName"], p["topicRulePayload"], p.get("tags"))


@iot("GetTopicRule")
def get_topic_rule(call: C, p: dict[str, Any]) -> dict[str, Any]:
    row = call.service.get(call.scope, p["ruleName"])
    payload = row.payload
    rule: dict[str, Any] = {
        "ruleName": row.name, "sql": payload["sql"], "createdAt": row.created,
        "actions": payload.get("actions") or [], "ruleDisabled": row.disabled,
        "awsIotSqlVersion": sql_version(payload)}
    if payload.get("description") is not None:
        rule["description"] = payload["description"]
    if payload.get("errorAction"):
        rule["errorAction"] = payload["errorAction"]
    return {"ruleArn": call.scope.arn("rule", row.name), "rule": rule}


def _item(scope: Scope, row: RuleRow) -> dict[str, Any]:
    return {"ruleArn": scope.arn("rule", row.name), "ruleName": row.name,
            "topicPattern": row.topic_filter, "createdAt": row.created,
            "ruleDisabled": row.disabled}


@iot("ListTopicRules")
def list_topic_rules(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rows, last = call.service.page(call.scope, paging.decode_str(p.get("nextToken")),
                                   paging.page_size(p, default=1000), p.get("topic"),
                                   p.get("ruleDisabled"))
    out: dict[str, Any] = {"rules": [_item(call.scope, r) for r in rows]}
    token = paging.next_token(last)
    if token:
        out["nextToken"] = token
    return out


@iot("ReplaceTopicRule")
def replace_topic_rule(call: C, p: dict[str, Any]) -> None:
    call.service.replace(call.scope, p["ruleName"], p["topicRulePayload"])


@iot("DeleteTopicRule")
def delete_topic_rule(call: C, p: dict[str, Any]) -> None:
    call.service.delete(call.scope, p["ruleName"])


@iot("EnableTopicRule")
def enable_topic_rule(call: C, p: dict[str, Any]) -> None:
    call.service.set_disabled(call.scope, p["ruleName"], False)


@iot("DisableTopicRule")
def disable_topic_rule(call: C, p: dict[str, Any]) -> None:
    call.service.set_disabled(call.scope, p["ruleName"], True)
