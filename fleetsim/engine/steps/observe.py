"""`observe`: an observer client with its own certificate and policy, recording arrivals."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fleetsim.device import DeviceIdentity, IdentityStore
from fleetsim.device.identity import IdentityDamaged
from fleetsim.engine import devices as dev
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call
from fleetsim.engine.observer_identity import observer_policy
from fleetsim.engine.provisioning import (
    CERTIFICATE,
    POLICY,
    POLICY_ATTACHMENT,
    issue_certificate,
    journaled,
)
from fleetsim.engine.reconcile import json_equal
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


POLICY_SUFFIX = "-policy"


async def _kept(ctx: RunContext, topics: list[str], account: str
                ) -> tuple[DeviceIdentity, dict[str, Any], str] | None:
    """The observer an earlier kept run left (its stored certificate ACTIVE, its policy
    attached and allowing these topics): its identity, certificate and client id."""
    store = IdentityStore(ctx.identities_dir, dev.OBSERVER_FLEET)
    try:
        stored = store.load(dev.OBSERVER_FLEET)
    except (FileNotFoundError, IdentityDamaged):
        return None  # a new one is made
    if stored.certificate_id is None or stored.certificate_arn is None:
        return None
    cert = await describe(ctx, "DescribeCertificate", "the observer",
                          certificateId=stored.certificate_id)
    if cert is None or cert["certificateDescription"]["status"] != "ACTIVE":
        return None
    attached = await describe(ctx, "ListAttachedPolicies", "the observer",
                              target=stored.certificate_arn)
    names = [p["policyName"] for p in (attached or {}).get("policies", [])
             if p["policyName"].endswith(POLICY_SUFFIX)]
    if len(names) != 1:
        return None
    client_id = names[0].removesuffix(POLICY_SUFFIX)
    have = await describe(ctx, "GetPolicy", names[0], policyName=names[0])
    want = observer_policy(ctx.target.region, account, client_id, topics)
    if have is None or not json_equal(have["policyDocument"], want):
        return None
    description = cert["certificateDescription"]
    return stored, {"certificatePem": description["certificatePem"],
                    "certificateArn": description["certificateArn"]}, client_id


async def run(ctx: RunContext, step: ObserveStep) -> None:
    """The observer's certificate is issued from a CSR, journaled by public key before the
    call like a device's, with a policy of its own; its identity files go with the
    certificate at clean-up. An earlier kept run's observer still ACTIVE with a policy for
    these topics is reused (not by shards): nothing is made."""
    account = (await ctx.sts.get_caller_identity())["Account"]
    # Shards run at once on one state dir: each makes its own (one shard's stored observer,
    # reused by another, would connect twice with one client id, and AWS IoT drops the first).
    kept = await _kept(ctx, step.topics, account) if ctx.shards == 1 else None
    if kept is not None:
        ctx.metrics.incr("observer.reused")
        ctx.observer = await dev.start_observer(ctx, kept[2], kept[0], kept[1], step.topics,
                                                step.qos)
        return
    identity = await dev.observer_identity(ctx)
    created = await issue_certificate(ctx, ctx.journal, identity, "the observer")
    client_id = f"fleetsim-observer-{ctx.run_id}"
    policy = f"{client_id}{POLICY_SUFFIX}"
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
