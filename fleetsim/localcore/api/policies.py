"""IoT policies, their versions and their attachments (certificates, thing groups)."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.errors import (
    ApiError,
    already_exists,
    delete_conflict,
    found,
    invalid,
)
from fleetsim.localcore.api.operations import iot
from fleetsim.localcore.api.thing_groups import require_group
from fleetsim.localcore.api.things import require_principal, require_thing
from fleetsim.localcore.policy_document import PolicyDocumentError, parse_policy_document
from fleetsim.localcore.store import PolicyRecord

MAX_POLICY_VERSIONS = 5
MAX_POLICIES_PER_TARGET = 10


def require_policy(ctx: ApiContext, name: str) -> PolicyRecord:
    return found(ctx.store.get_policy(name))


def validate_document(document: str) -> None:
    try:
        parse_policy_document(document)
    except PolicyDocumentError as e:
        raise ApiError("MalformedPolicyException", str(e)) from e


def _version_id(p: dict[str, Any]) -> int:
    try:
        return int(p["policyVersionId"])
    except ValueError as e:
        raise invalid(f"Invalid policy version id: {p['policyVersionId']}") from e


@iot("CreatePolicy")
def create_policy(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    name, document = p["policyName"], p["policyDocument"]
    arn = ctx.arn("policy", name)
    if ctx.store.get_policy(name) is not None:
        raise already_exists(f"Policy cannot be created - name already exists (name={name})",
                             name, arn)
    validate_document(document)
    ctx.store.create_policy(name, document)
    return {"policyName": name, "policyArn": arn, "policyDocument": document,
            "policyVersionId": "1"}


@iot("GetPolicy")
def get_policy(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    policy = require_policy(ctx, p["policyName"])
    return {"policyName": policy.name, "policyArn": ctx.arn("policy", policy.name),
            "policyDocument": policy.document, "defaultVersionId": str(policy.default_version),
            "creationDate": policy.created, "lastModifiedDate": policy.last_modified,
            "generationId": policy.generation_id}


@iot("DeletePolicy")
def delete_policy(ctx: ApiContext, p: dict[str, Any]) -> None:
    policy = require_policy(ctx, p["policyName"])
    if ctx.store.policy_is_attached(policy.name):
        raise delete_conflict("The policy cannot be deleted as the policy is attached to one "
                              f"or more principals (name={policy.name})")
    if len(ctx.store.policy_versions(policy.name)) > 1:
        raise delete_conflict("The policy cannot be deleted as versions other than than "
                              "default version exist")
    ctx.store.delete_policy(policy.name)


@iot("ListPolicies")
def list_policies(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    ascending = p.get("ascendingOrder", True) is not False
    start = paging.decode_str(p.get("marker"), "" if ascending else "\U0010ffff")
    page, last = ctx.store.list_policies(start, paging.page_size(p, "pageSize", 250), ascending)
    return paging.listing("policies", _policy_refs(ctx, [r.name for r in page]), "nextMarker",
                          paging.next_token(last))


# --- versions -------------------------------------------------------------------------------

@iot("CreatePolicyVersion")
def create_policy_version(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    policy = require_policy(ctx, p["policyName"])
    validate_document(p["policyDocument"])
    if len(ctx.store.policy_versions(policy.name)) >= MAX_POLICY_VERSIONS:
        raise ApiError("VersionsLimitExceededException",
                       f"The policy {policy.name} already has the maximum number of versions "
                       f"({MAX_POLICY_VERSIONS})")
    version = ctx.store.create_policy_version(policy, p["policyDocument"],
                                              bool(p.get("setAsDefault")))
    return {"policyArn": ctx.arn("policy", policy.name), "policyDocument": version.document,
            "policyVersionId": str(version.version), "isDefaultVersion": version.is_default}


@iot("GetPolicyVersion")
def get_policy_version(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    policy = require_policy(ctx, p["policyName"])
    version = found(ctx.store.get_policy_version(policy.name, _version_id(p)))
    return {"policyArn": ctx.arn("policy", policy.name), "policyName": policy.name,
            "policyDocument": version.document, "policyVersionId": str(version.version),
            "isDefaultVersion": version.is_default, "creationDate": version.created,
            "lastModifiedDate": version.created, "generationId": policy.generation_id}


@iot("ListPolicyVersions")
def list_policy_versions(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    policy = require_policy(ctx, p["policyName"])
    return {"policyVersions": [
        {"versionId": str(v.version), "isDefaultVersion": v.is_default, "createDate": v.created}
        for v in ctx.store.policy_versions(policy.name)]}


@iot("SetDefaultPolicyVersion")
def set_default_policy_version(ctx: ApiContext, p: dict[str, Any]) -> None:
    policy = require_policy(ctx, p["policyName"])
    version = found(ctx.store.get_policy_version(policy.name, _version_id(p)))
    ctx.store.set_default_policy_version(policy.name, version.version)


@iot("DeletePolicyVersion")
def delete_policy_version(ctx: ApiContext, p: dict[str, Any]) -> None:
    policy = require_policy(ctx, p["policyName"])
    version = found(ctx.store.get_policy_version(policy.name, _version_id(p)))
    if version.is_default:
        raise delete_conflict("Cannot delete the default version of a policy")
    ctx.store.delete_policy_version(policy.name, version.version)


# --- attachments ----------------------------------------------------------------------------

def _require_target(ctx: ApiContext, target: str) -> None:
    require_principal(ctx, target)
    marker = ":thinggroup/"
    if target.startswith("arn:") and marker in target:
        require_group(ctx, target.split(marker, 1)[1])


def _attach(ctx: ApiContext, name: str, target: str) -> None:
    policy = require_policy(ctx, name)
    _require_target(ctx, target)
    attached = ctx.store.policies_of_target(target)
    if policy.name not in attached and len(attached) >= MAX_POLICIES_PER_TARGET:
        raise ApiError("LimitExceededException",
                       f"The target {target} already has the maximum number of policies "
                       f"({MAX_POLICIES_PER_TARGET}) attached")
    ctx.store.attach_policy(policy.name, target)


def _detach(ctx: ApiContext, name: str, target: str) -> None:
    require_policy(ctx, name)
    ctx.store.detach_policy(name, target)


@iot("AttachPolicy")
def attach_policy(ctx: ApiContext, p: dict[str, Any]) -> None:
    _attach(ctx, p["policyName"], p["target"])


@iot("DetachPolicy")
def detach_policy(ctx: ApiContext, p: dict[str, Any]) -> None:
    _detach(ctx, p["policyName"], p["target"])


@iot("AttachPrincipalPolicy")
def attach_principal_policy(ctx: ApiContext, p: dict[str, Any]) -> None:
    _attach(ctx, p["policyName"], p["principal"])


@iot("DetachPrincipalPolicy")
def detach_principal_policy(ctx: ApiContext, p: dict[str, Any]) -> None:
    _detach(ctx, p["policyName"], p["principal"])


def _group_chain(ctx: ApiContext, target: str) -> list[str]:
    """The target, then (for a thing group) its ancestors' ARNs."""
    marker = ":thinggroup/"
    if marker not in target:
        return [target]
    group = target.split(marker, 1)[1]
    return [target, *(ctx.arn("thinggroup", g) for g in ctx.store.ancestors(group))]


def _policy_refs(ctx: ApiContext, names: list[str]) -> list[dict[str, str]]:
    return [{"policyName": n, "policyArn": ctx.arn("policy", n)} for n in names]


def _policies_of(ctx: ApiContext, targets: list[str]) -> list[str]:
    """The names of the policies attached to `targets`, each once, in attachment order."""
    names: list[str] = []
    for t in targets:
        names += [n for n in ctx.store.policies_of_target(t) if n not in names]
    return names


def _policies_page(ctx: ApiContext, p: dict[str, Any], names: list[str]) -> dict[str, Any]:
    page, token = paging.slice_page(names, p.get("marker"), paging.page_size(p, "pageSize", 250))
    return paging.listing("policies", _policy_refs(ctx, page), "nextMarker", token)


def _targets_page(ctx: ApiContext, p: dict[str, Any]) -> tuple[list[str], str | None]:
    """A page of the targets of policy `policyName` and the next page's marker."""
    policy = require_policy(ctx, p["policyName"])
    targets, last = ctx.store.targets_of_policy(policy.name, paging.decode_str(p.get("marker")),
                                                paging.page_size(p, "pageSize", 250))
    return targets, paging.next_token(last)


@iot("ListAttachedPolicies")
def list_attached_policies(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    target = p["target"]
    _require_target(ctx, target)
    targets = _group_chain(ctx, target) if p.get("recursive") else [target]
    return _policies_page(ctx, p, _policies_of(ctx, targets))


@iot("ListPrincipalPolicies")
def list_principal_policies(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    _require_target(ctx, p["principal"])
    names = ctx.store.policies_of_target(p["principal"])
    if p.get("ascendingOrder") is False:
        names.reverse()
    return _policies_page(ctx, p, names)


@iot("ListTargetsForPolicy")
def list_targets_for_policy(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    targets, marker = _targets_page(ctx, p)
    return paging.listing("targets", targets, "nextMarker", marker)


@iot("ListPolicyPrincipals")
def list_policy_principals(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    targets, marker = _targets_page(ctx, p)
    return paging.listing("principals", [t for t in targets if ":thinggroup/" not in t],
                          "nextMarker", marker)


@iot("GetEffectivePolicies")
def get_effective_policies(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    targets: list[str] = []
    if p.get("principal"):
        _require_target(ctx, p["principal"])
        targets.append(p["principal"])
    if p.get("thingName"):
        thing = require_thing(ctx, p["thingName"])
        for group in ctx.store.groups_of_thing(thing.name):
            for g in (group, *ctx.store.ancestors(group)):
                arn = ctx.arn("thinggroup", g)
                if arn not in targets:
                    targets.append(arn)
    out = []
    for name in _policies_of(ctx, targets):
        policy = ctx.store.get_policy(name)
        if policy is not None:
            out.append({"policyName": name, "policyArn": ctx.arn("policy", name),
                        "policyDocument": policy.document})
    return {"effectivePolicies": out}
