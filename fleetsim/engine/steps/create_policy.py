"""`create_policy`: one policy, or one per device when its name is templated."""

from __future__ import annotations

import json
from typing import Any, Literal

from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.provisioning import POLICY, journaled
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import Fleet, StepBase
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate, Template


class CreatePolicyStep(StepBase):
    """create-policy; a `{thing_name}` in the policy name makes one policy per device."""

    kind: Literal["create_policy"]
    policy: str
    document: dict[str, Any] | str
    fleet: str | None = None

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        names = DEVICE_NAMES if self.fleet else set()
        problems = template_problems((*at, "policy"), self.policy, names)
        if "{" in self.policy and not self.fleet:
            problems.append(((*at, "policy"), "a templated policy name needs 'fleet' to say "
                                              "whose devices it is made for"))
        if isinstance(self.document, dict):
            problems += template_problems((*at, "document"), self.document, names)
        return problems

    def per_device(self) -> bool:
        return self.fleet is not None and "{" in self.policy


ALREADY_EXISTS = frozenset({"ResourceAlreadyExistsException"})


async def create_or_reuse_policy(ctx: RunContext, name: str, document: str,
                                 fleet: Fleet | None, shared: bool) -> None:
    """A policy that already exists with the same document (made by an earlier run of a
    persistent fleet, or by another shard) is used as it is: counted as `policies.reused`,
    not as an error, and not journaled again (the entry written before the call is voided)."""
    try:
        await journaled(ctx.journal_for(fleet, shared), POLICY.name, {"name": name},
                        api_call(ctx, "CreatePolicy", name, expected=ALREADY_EXISTS,
                                 policyName=name, policyDocument=document))
    except ApiError as e:
        if e.code not in ALREADY_EXISTS:
            raise
        existing = await api_call(ctx, "GetPolicy", name, policyName=name)
        if json.loads(existing["policyDocument"]) != json.loads(document):
            raise ApiError("CreatePolicy", e.code, f"policy {name} already exists with a "
                           "different document; delete it or choose another name", name) from e
        ctx.metrics.incr("policies.reused")


async def run(ctx: RunContext, step: CreatePolicyStep) -> None:
    names = DEVICE_NAMES if step.fleet else set()
    name_t = Template(step.policy, names)
    doc_t = StructTemplate(step.document, names) if isinstance(step.document, dict) else None
    fleet = ctx.scenario.fleet(step.fleet) if step.fleet else None

    async def create(values: dict[str, Any], per_device: bool) -> None:
        document = json.dumps(doc_t.render(values)) if doc_t else str(step.document)
        await create_or_reuse_policy(ctx, name_t.render(values), document, fleet,
                                     shared=not per_device)

    if step.fleet is None or "{" not in step.policy:
        await create({}, per_device=False)
        return
    await for_each_device(ctx, ctx.fleet_devices(step.fleet),
                          lambda d: create(d.names, per_device=True))


KIND = StepKind(CreatePolicyStep, run, journals=(POLICY,))
