"""Running a matched rule's actions, and its error action when any of them fails.

Republish, S3 and CloudWatch Logs run at once (they are local and quick); a Lambda action is
awaited in a task of its own, so the bus (and the broker behind it) never waits for a function.
Every failure is logged with the rule's name and the reason, and handed to the error action in
AWS's "Error action message format"."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Protocol

from fleetsim.localcore.broker.topics import topic_name_error
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.rules.actions import RUN_LOCALLY, Action
from fleetsim.localcore.features.rules.rule import CompiledRule
from fleetsim.localcore.features.rules.sql.context import NOT_JSON, MessageContext, decode_payload
from fleetsim.localcore.scope import Scope

log = logging.getLogger("fleetsim.localcore.rules")

LAMBDA_PRINCIPAL = "iot.amazonaws.com"


class Publisher(Protocol):
    def publish_internal(self, topic: str, payload: bytes, qos: int = 0,
                         retain: bool = False) -> None: ...


class ServiceLookup(Protocol):
    def get(self, name: str) -> Any: ...


class ActionFailed(Exception):
    def __init__(self, resource: str, message: str):
        super().__init__(message)
        self.resource = resource
        self.message = message


class ActionRunner:
    def __init__(self, services: ServiceLookup, broker: Publisher, scope: Scope):
        self._services = services
        self._broker = broker
        self._scope = scope
        self._tasks: set[asyncio.Task[None]] = set()

    def _service(self, feature: str, action: str) -> Any:
        try:
            return self._services.get(feature)
        except LookupError:
            raise ActionFailed("-", f"the {action} action needs local core's {feature!r} "
                                    "feature, which is not installed") from None

    # --- one message through one rule -----------------------------------------------------------

    def run(self, rule: CompiledRule, ctx: MessageContext, output: bytes) -> None:
        failures: list[dict[str, str]] = []
        pending: list[tuple[Action, Awaitable[None]]] = []
        for action in rule.actions:
            if not action.supported:
                continue  # logged once when the rule was loaded
            self._start(rule, action, ctx, output, failures, pending)
        if not pending:
            self._finish(rule, ctx, failures)
            return
        task = asyncio.get_running_loop().create_task(self._await(rule, ctx, failures, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, rule: CompiledRule, action: Action, ctx: MessageContext, output: bytes,
               failures: list[dict[str, str]], pending: list[tuple[Action, Awaitable[None]]]
               ) -> None:
        try:
            awaitable = self._run_action(rule, action, ctx, output)
        except Exception as e:
            failures.append(self._failure(rule, action, e))
            return
        if awaitable is not None:
            pending.append((action, awaitable))

    async def _await(self, rule: CompiledRule, ctx: MessageContext,
                     failures: list[dict[str, str]],
                     pending: list[tuple[Action, Awaitable[None]]]) -> None:
        for action, awaitable in pending:
            try:
                await awaitable
            except Exception as e:
                failures.append(self._failure(rule, action, e))
        self._finish(rule, ctx, failures)

    def _failure(self, rule: CompiledRule, action: Action, e: Exception) -> dict[str, str]:
        if isinstance(e, ActionFailed):
            resource, message = e.resource, e.message
            log.warning("rule %s: %s action failed: %s", rule.name, action.kind, message)
        else:
            resource, message = "-", f"{type(e).__name__}: {e}"
            log.exception("rule %s: %s action failed unexpectedly", rule.name, action.kind)
        return {"failedAction": RUN_LOCALLY[action.kind], "failedResource": resource,
                "errorMessage": message}

    def _finish(self, rule: CompiledRule, ctx: MessageContext,
                failures: list[dict[str, str]]) -> None:
        """"Error action message format": one message per rule and message, every failure."""
        if not failures or rule.error_action is None:
            return
        error_action = rule.error_action
        if not error_action.supported:
            return
        message = error_message(rule.name, ctx, failures)
        sink: list[dict[str, str]] = []
        pending: list[tuple[Action, Awaitable[None]]] = []
        self._start(rule, error_action, ctx, message, sink, pending)
        for _, awaitable in pending:
            task = asyncio.get_running_loop().create_task(self._quiet(rule, awaitable))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for failure in sink:
            log.warning("rule %s: the error action failed too: %s", rule.name,
                        failure["errorMessage"])

    async def _quiet(self, rule: CompiledRule, awaitable: Awaitable[None]) -> None:
        try:
            await awaitable
        except Exception as e:
            log.warning("rule %s: the error action failed too: %s", rule.name,
                        e.message if isinstance(e, ActionFailed) else e)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- the actions ------------------------------------------------------------------------------

    def _run_action(self, rule: CompiledRule, action: Action, ctx: MessageContext,
                    output: bytes) -> Awaitable[None] | None:
        if action.kind == "republish":
            self._republish(action, ctx, output)
        elif action.kind == "s3":
            self._s3(action, ctx, output)
        elif action.kind == "cloudwatchLogs":
            self._logs(rule, action, ctx, output)
        elif action.kind == "lambda":
            return self._lambda(rule, action, ctx, output)
        return None

    def _republish(self, action: Action, ctx: MessageContext, output: bytes) -> None:
        """"Republish": the rule's output to a topic (templated), QoS 0 unless set."""
        topic = action.render("topic", ctx)
        error = topic_name_error(topic)
        if error is not None:
            raise ActionFailed(topic, f"Failed to republish to topic '{topic}': the topic "
                                      f"{error}")
        self._broker.publish_internal(topic, output, int(action.params.get("qos") or 0))

    def _s3(self, action: Action, ctx: MessageContext, output: bytes) -> None:
        """"S3": the rule's output as an object (bucket and key templated)."""
        bucket, key = action.render("bucketName", ctx), action.render("key", ctx)
        s3 = self._service("s3", "s3")
        try:
            s3.put_object(bucket, key, output)
        except AwsError as e:
            raise ActionFailed(bucket, f"Failed to put S3 object. The error received was "
                                       f"{e.message} (Error Code: {e.code}). Message arrived on: "
                                       f"{ctx.topic}, Action: s3, Bucket: {bucket}, "
                                       f"Key: \"{key}\"") from None

    def _logs(self, rule: CompiledRule, action: Action, ctx: MessageContext,
              output: bytes) -> None:
        """"CloudWatch Logs": the output as one event, or with batchMode a JSON array of
        {"timestamp": ms, "message": text} as one event each."""
        group = action.render("logGroupName", ctx)
        if action.params.get("batchMode"):
            events = batch_events(output)
            if events is None:
                raise ActionFailed(group, "batchMode needs the rule's output to be a JSON array "
                                          "of {\"timestamp\": ms, \"message\": text} objects")
        else:
            events = [(int(time.time() * 1000), output.decode("utf-8", "replace"))]
        logs = self._service("logs", "cloudwatchLogs")
        # AWS does not document the stream names it writes; local core uses the rule's name.
        logs.put_events(self._scope.region, group, rule.name, events)

    def _lambda(self, rule: CompiledRule, action: Action, ctx: MessageContext,
                output: bytes) -> Awaitable[None]:
        """"Lambda": an asynchronous invocation, allowed by the function's resource policy for
        iot.amazonaws.com from this rule's ARN; a binary output is refused ("Working with
        binary payloads": the Lambda action needs JSON)."""
        arn = action.render("functionArn", ctx)
        if decode_payload(output) is NOT_JSON:
            raise ActionFailed(arn, "The Lambda action does not take binary payloads: select "
                                    "encode(*, 'base64') to pass them as JSON")
        functions = self._service("lambda", "lambda")
        return self._invoke(functions, arn, rule, output)

    async def _invoke(self, functions: Any, arn: str, rule: CompiledRule, output: bytes) -> None:
        try:
            await functions.invoke_as_service(
                self._scope, arn, output, principal=LAMBDA_PRINCIPAL, source_arn=rule.arn,
                source_account=self._scope.account_id)
        except AwsError as e:
            what = ("not invoked: its resource policy does not allow iot.amazonaws.com from "
                    f"{rule.arn} (add-permission)" if e.code == "AccessDeniedException"
                    else f"not invoked: {e.code}: {e.message}")
            raise ActionFailed(arn, f"Lambda function {arn} {what}") from None


def batch_events(output: bytes) -> list[tuple[int, str]] | None:
    doc = decode_payload(output)
    if not isinstance(doc, list):
        return None
    events: list[tuple[int, str]] = []
    for item in doc:
        if not (isinstance(item, dict) and isinstance(item.get("timestamp"), int)
                and not isinstance(item.get("timestamp"), bool) and "message" in item):
            return None
        message = item["message"]
        events.append((item["timestamp"], message if isinstance(message, str)
                       else json.dumps(message)))
    return events


def error_message(rule_name: str, ctx: MessageContext, failures: list[dict[str, str]]) -> bytes:
    return json.dumps({
        "ruleName": rule_name, "topic": ctx.topic, "cloudwatchTraceId": str(uuid.uuid4()),
        "clientId": ctx.client_id or "n/a",
        "base64OriginalPayload": base64.b64encode(ctx.payload).decode(),
        "failures": failures}).encode()
