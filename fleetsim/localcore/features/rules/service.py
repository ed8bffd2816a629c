"""Topic rules as resources (Create/Get/List/Replace/Delete/Enable/DisableTopicRule), per region,
and the engine's view of the enabled ones."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError, already_exists
from fleetsim.localcore.features.rules.rule import CompiledRule, compile_rule
from fleetsim.localcore.features.rules.store import RuleRow, RulesStore
from fleetsim.localcore.scope import Scope


def unauthorized(scope: Scope, operation: str, name: str) -> AwsError:
    """What AWS answers for a rule that does not exist: the rule operations model no
    ResourceNotFoundException, and AWS IoT answers UnauthorizedException instead (the
    GetTopicRule/DeleteTopicRule errors of the API reference)."""
    return AwsError("UnauthorizedException",
                    f"User is not authorized to perform: iot:{operation} on resource: "
                    f"{scope.arn('rule', name)}")


class RulesService:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time):
        self._db = db
        self._store = RulesStore(db)
        self._clock = clock
        self._listeners: list[Callable[[str], None]] = []

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(region)` after a change to that region's rules commits."""
        self._listeners.append(listener)

    def _changed(self, region: str) -> None:
        for listener in self._listeners:
            self._db.after_commit(functools.partial(listener, region))

    # --- resources -----------------------------------------------------------------------------

    def create(self, scope: Scope, name: str, payload: dict[str, Any], tags: str | None) -> None:
        compiled = compile_rule(name, scope.arn("rule", name), payload)
        row = RuleRow(name, payload, compiled.query.topic_filter,
                      bool(payload.get("ruleDisabled")), self._clock(), tags)
        with self._db.transaction():
            if not self._store.insert(scope.region, row):
                raise already_exists(f"Rule {name} already exists", name,
                                     scope.arn("rule", name))
            self._changed(scope.region)

    def get(self, scope: Scope, name: str) -> RuleRow:
        row = self._store.get(scope.region, name)
        if row is None:
            raise unauthorized(scope, "GetTopicRule", name)
        return row

    def replace(self, scope: Scope, name: str, payload: dict[str, Any]) -> None:
        compiled = compile_rule(name, scope.arn("rule", name), payload)
        with self._db.transaction():
            if not self._store.replace(scope.region, name, payload, compiled.query.topic_filter,
                                       bool(payload.get("ruleDisabled"))):
                raise unauthorized(scope, "ReplaceTopicRule", name)
            self._changed(scope.region)

    def set_disabled(self, scope: Scope, name: str, disabled: bool) -> None:
        with self._db.transaction():
            if not self._store.set_disabled(scope.region, name, disabled):
                raise unauthorized(scope, "DisableTopicRule" if disabled else "EnableTopicRule",
                                   name)
            self._changed(scope.region)

    def delete(self, scope: Scope, name: str) -> None:
        with self._db.transaction():
            if not self._store.delete(scope.region, name):
                raise unauthorized(scope, "DeleteTopicRule", name)
            self._changed(scope.region)

    def page(self, scope: Scope, after: str, limit: int, topic: str | None,
             disabled: bool | None) -> tuple[list[RuleRow], str | None]:
        rows = self._store.page(scope.region, after, limit, topic, disabled)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].name if more and rows else None)

    # --- the engine's view ---------------------------------------------------------------------

    def enabled_rules(self, scope: Scope) -> list[CompiledRule]:
        """The region's enabled rules, compiled (each was checked when it was stored)."""
        return [compile_rule(r.name, scope.arn("rule", r.name), r.payload)
                for r in self._store.enabled(scope.region)]
