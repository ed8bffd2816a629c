"""The rules engine: every message the broker routes (`MessagePublished`, `$aws/events/...`
included) is matched against the enabled rules of the broker's region by topic filter (one
trie, so the cost grows with the rules that match, not with all rules), evaluated, and handed
to the action runner. Nothing here raises into the bus: a rule that fails is logged with its
name and the reason."""

from __future__ import annotations

import logging

from fleetsim.localcore.broker.topics import SubscriptionTrie
from fleetsim.localcore.bus import MessagePublished
from fleetsim.localcore.features.rules.rule import CompiledRule
from fleetsim.localcore.features.rules.runner import ActionRunner
from fleetsim.localcore.features.rules.service import RulesService
from fleetsim.localcore.features.rules.sql.context import MessageContext
from fleetsim.localcore.scope import Scope

log = logging.getLogger("fleetsim.localcore.rules")


class RulesEngine:
    def __init__(self, service: RulesService, runner: ActionRunner, scope: Scope):
        self._service = service
        self._runner = runner
        self._scope = scope
        self._rules: dict[str, CompiledRule] = {}
        self._trie = SubscriptionTrie()
        self._loaded = False
        self._reported: set[tuple[str, str]] = set()  # (rule, action kind) logged as unsupported

    def reload(self, region: str) -> None:
        """Re-read the region's enabled rules (after a change commits)."""
        if region != self._scope.region:
            return
        try:
            rules = self._service.enabled_rules(self._scope)
        except Exception:
            log.exception("could not load the topic rules of %s", region)
            return
        trie = SubscriptionTrie()
        for rule in rules:
            trie.add(rule.query.topic_filter, rule.name, 0)
            self._report_unsupported(rule)
        self._rules = {r.name: r for r in rules}
        self._trie = trie
        self._loaded = True

    def _report_unsupported(self, rule: CompiledRule) -> None:
        actions = [*rule.actions, *([rule.error_action] if rule.error_action else [])]
        for action in actions:
            key = (rule.name, action.kind)
            if not action.supported and key not in self._reported:
                self._reported.add(key)
                log.warning("rule %s: the %s action is not run by local core (it runs republish, "
                            "s3, lambda and cloudwatchLogs); it is skipped", rule.name,
                            action.kind)

    def on_message(self, e: MessagePublished) -> None:
        if not self._loaded:
            self.reload(self._scope.region)
        matched = self._trie.match(e.topic)
        if not matched:
            return
        ctx = MessageContext(e.topic, e.payload, e.client_id, e.principal_id)
        for name in matched:
            rule = self._rules.get(str(name))
            if rule is not None:
                self._evaluate(rule, ctx)

    def _evaluate(self, rule: CompiledRule, ctx: MessageContext) -> None:
        try:
            if not rule.query.where_matches(ctx):
                return
            output = rule.query.output(ctx)
            if output is None:
                return
            self._runner.run(rule, ctx, output)
        except Exception as e:
            log.warning("rule %s: evaluating the message on %s failed: %s: %s", rule.name,
                        ctx.topic, type(e).__name__, e)
