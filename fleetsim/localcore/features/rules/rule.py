"""A topic rule compiled for the engine: its query, its actions, its error action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.rules.actions import Action, compile_action
from fleetsim.localcore.features.rules.sql.compiler import (
    DEFAULT_VERSION,
    VERSIONS,
    Query,
    SqlError,
    compile_sql,
)


@dataclass(frozen=True)
class CompiledRule:
    name: str
    arn: str
    query: Query
    actions: tuple[Action, ...]
    error_action: Action | None


def sql_version(payload: dict[str, Any]) -> str:
    return payload.get("awsIotSqlVersion") or DEFAULT_VERSION


def compile_rule(name: str, arn: str, payload: dict[str, Any]) -> CompiledRule:
    """The rule, or AwsError as CreateTopicRule answers: SqlParseException for SQL (and
    substitution templates) the engine cannot read, InvalidRequestException for the rest."""
    version = sql_version(payload)
    if version not in VERSIONS:
        raise AwsError("InvalidRequestException",
                       f"awsIotSqlVersion '{version}' is not one of {', '.join(VERSIONS)}")
    try:
        query = compile_sql(payload["sql"], version)
        actions = tuple(compile_action(a, f"actions[{i}]")
                        for i, a in enumerate(payload.get("actions") or []))
        error = payload.get("errorAction")
        error_action = compile_action(error, "errorAction") if error else None
    except SqlError as e:
        raise AwsError("SqlParseException", str(e)) from None
    return CompiledRule(name, arn, query, actions, error_action)
