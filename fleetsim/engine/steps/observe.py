"""`observe`: an observer client with its own certificate and policy, recording arrivals."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetsim.engine import devices as dev
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.observer_identity import observer_policy
from fleetsim.engine.provisioning import (
    CERTIFICATE,
    POLICY,
    POLICY_ATTACHMENT,
    issue_certificate,
    journaled,
)
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase
from fleetsim.scenario.semantics import Loc, Problem, Scope


class ObserveStep(StepBase):
    """An observer client that subscribes to topic filters and records what arrives."""

    kind: Literal["observe"]
    topics: list[str] = Field(min_length=1)
    qos: Literal[0, 1] = 0

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        scope.observing = True
        return []


async def run(ctx: RunContext, step: ObserveStep) -> None:
    """The observer's key is kept (one per scenario, reused by every run); its certificate is
    issued from a CSR each run, journaled by public key before the call like a device's."""
    identity = await dev.observer_identity(ctx)
    created = await issue_certificate(ctx, ctx.journal, identity, "the observer",
                                      remove_files=False)
    client_id = f"fleetsim-observer-{ctx.run_id}"
    account = (await ctx.sts.get_caller_identity())["Account"]
    policy = f"{client_id}-policy"
    document = observer_policy(ctx.target.region, account, client_id, step.topics)
    await journaled(ctx.journal, POLICY.name, {"name": policy},
                    api_call(ctx, "CreatePolicy", policy, policyName=policy,
                             policyDocument=document))
    arn = created["certificateArn"]
    await journaled(ctx.journal, POLICY_ATTACHMENT.name, {"policy": policy, "target": arn},
                    api_call(ctx, "AttachPolicy", policy, policyName=policy, target=arn))
    ctx.observer = await dev.start_observer(ctx, client_id, identity, created, step.topics,
                                            step.qos)


KIND = StepKind(ObserveStep, run, journals=(CERTIFICATE, POLICY, POLICY_ATTACHMENT))
