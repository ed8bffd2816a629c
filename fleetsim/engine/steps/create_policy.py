"""`create_policy`: one policy, or one per device when its name is templated."""

from __future__ import annotations

import json
from typing import Any, Literal

from fleetsim.control.cleanup import JournalKind, Phase, with_retry
from fleetsim.control.clients import AwsClients
from fleetsim.control.errors import ApiError
from fleetsim.control.journal import Journal
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.provisioning import POLICY, journaled
from fleetsim.engine.reconcile import json_equal
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
# AWS IoT keeps at most five versions of a policy (API reference, "CreatePolicyVersion": "If
# the policy has five versions, you must use DeletePolicyVersion to delete an existing
# version before you create a new one").
MAX_VERSIONS = 5


async def _undo_version(c: AwsClients, d: dict[str, Any]) -> None:
    """The version a drift fix made default: the one found before is default again, and the
    fix's version deleted (the policy left as the run found it)."""
    await c.iot.set_default_policy_version(policyName=d["policy"],
                                           policyVersionId=d["previous"])
    await with_retry(lambda: c.iot.delete_policy_version(policyName=d["policy"],
                                                         policyVersionId=d["version"]))


# Before DELETE: a policy with versions besides its default cannot be deleted.
POLICY_VERSION = JournalKind("policy_version", Phase.DETACH, _undo_version)


async def create_or_reuse_policy(ctx: RunContext, name: str, document: str,
                                 fleet: Fleet | None, shared: bool) -> None:
    """The policy as declared: absent, created (journaled); there with the same document
    (made by an earlier run, a persistent fleet or another shard), reused: counted as
    `policies.reused`, not an error, not journaled; there with another default document,
    drift (`policy P: default version document differs`), fixed by a new version set as the
    default (CreatePolicyVersion, setAsDefault)."""
    journal = ctx.journal_for(fleet, shared)
    ledger = ctx.reconcile
    have = await describe(ctx, "GetPolicy", name, policyName=name)
    if have is None and ledger.plan:
        ledger.create(POLICY.name, name, journal is ctx.journal)
        return
    if have is None:
        try:
            await journaled(journal, POLICY.name, {"name": name},
                            api_call(ctx, "CreatePolicy", name, expected=ALREADY_EXISTS,
                                     policyName=name, policyDocument=document))
            ledger.create(POLICY.name, name, journal is ctx.journal)
            return
        except ApiError as e:  # made meanwhile (another shard, another device's step)
            if e.code not in ALREADY_EXISTS:
                raise
        have = await api_call(ctx, "GetPolicy", name, policyName=name)
    if json_equal(have["policyDocument"], document):
        ledger.reuse(POLICY.name, name)
        ctx.metrics.incr("policies.reused")
        return
    ledger.drifted(POLICY.name, name, ["default version document differs"])
    if not ledger.plan:
        await _new_default_version(ctx, journal, name, document,
                                   str(have.get("defaultVersionId", "1")))


async def _new_default_version(ctx: RunContext, journal: Journal, name: str, document: str,
                               previous: str) -> None:
    listed = await api_call(ctx, "ListPolicyVersions", name, policyName=name)
    versions = listed.get("policyVersions", [])
    if len(versions) >= MAX_VERSIONS:
        oldest = min((v for v in versions if not v.get("isDefaultVersion")),
                     key=lambda v: int(v["versionId"]))
        await api_call(ctx, "DeletePolicyVersion", name, policyName=name,
                       policyVersionId=oldest["versionId"])
    out = await api_call(ctx, "CreatePolicyVersion", name, policyName=name,
                         policyDocument=document, setAsDefault=True)
    journal.record(POLICY_VERSION.name, policy=name, version=out["policyVersionId"],
                   previous=previous)


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


KIND = StepKind(CreatePolicyStep, run, journals=(POLICY, POLICY_VERSION), plans=True, phase="api")
