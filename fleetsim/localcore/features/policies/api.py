"""HTTP handlers of policies, their versions and attachments."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.policies.service import PoliciesService
from fleetsim.localcore.scope import Scope

operations = Operations()
iot = operations.iot
P = Call[PoliciesService]


def _refs(scope: Scope, names: list[str]) -> list[dict[str, str]]:
    return [{"policyName": n, "policyArn": scope.arn("policy", n)} for n in names]


@iot("CreatePolicy")
def create_policy(call: P, p: dict[str, Any]) -> dict[str, Any]:
    rec = call.service.create_policy(call.scope, p["policyName"], p["policyDocument"])
    return {"policyName": rec.name, "policyArn": call.scope.arn("policy", rec.name),
            "policyDocument": rec.document, "policyVersionId": "1"}


@iot("GetPolicy")
def get_policy(call: P, p: dict[str, Any]) -> dict[str, Any]:
    policy = call.service.require_policy(call.scope, p["policyName"])
    return {"policyName": policy.name, "policyArn": call.scope.arn("policy", policy.name),
            "policyDocument": policy.document, "defaultVersionId": str(policy.default_version),
            "creationDate": policy.created, "lastModifiedDate": policy.last_modified,
            "generationId": policy.generation_id}


@iot("DeletePolicy")
def delete_policy(call: P, p: dict[str, Any]) -> None:
    call.service.delete_policy(call.scope, p["policyName"])


@iot("ListPolicies")
def list_policies(call: P, p: dict[str, Any]) -> dict[str, Any]:
    ascending = p.get("ascendingOrder", True) is not False
    start = paging.decode_str(p.get("marker"), "" if ascending else "\U0010ffff")
    page, last = call.service.list_policies(call.scope, start,
                                            paging.page_size(p, "pageSize", 250), ascending)
    return paging.listing("policies", _refs(call.scope, [r.name for r in page]), "nextMarker",
                          paging.next_token(last))


@iot("CreatePolicyVersion")
def create_policy_version(call: P, p: dict[str, Any]) -> dict[str, Any]:
    version = call.service.create_policy_version(call.scope, p["policyName"],
                                                 p["policyDocument"], bool(p.get("setAsDefault")))
    return {"policyArn": call.scope.arn("policy", version.policy_name),
            "policyDocument": version.document, "policyVersionId": str(version.version),
            "isDefaultVersion": version.is_default}


@iot("GetPolicyVersion")
def get_policy_version(call: P, p: dict[str, Any]) -> dict[str, Any]:
    policy = call.service.require_policy(call.scope, p["policyName"])
    version = call.service.require_version(call.scope, policy.name, p["policyVersionId"])
    return {"policyArn": call.scope.arn("policy", policy.name), "policyName": policy.name,
            "policyDocument": version.document, "policyVersionId": str(version.version),
            "isDefaultVersion": version.is_default, "creationDate": version.created,
            "lastModifiedDate": version.created, "generationId": policy.generation_id}


@iot("ListPolicyVersions")
def list_policy_versions(call: P, p: dict[str, Any]) -> dict[str, Any]:
    return {"policyVersions": [
        {"versionId": str(v.version), "isDefaultVersion": v.is_default, "createDate": v.created}
        for v in call.service.policy_versions(call.scope, p["policyName"])]}


@iot("SetDefaultPolicyVersion")
def set_default_policy_version(call: P, p: dict[str, Any]) -> None:
    call.service.set_default_policy_version(call.scope, p["policyName"], p["policyVersionId"])


@iot("DeletePolicyVersion")
def delete_policy_version(call: P, p: dict[str, Any]) -> None:
    call.service.delete_policy_version(call.scope, p["policyName"], p["policyVersionId"])


@iot("AttachPolicy")
def attach_policy(call: P, p: dict[str, Any]) -> None:
    call.service.attach_policy(call.scope, p["policyName"], p["target"])


@iot("DetachPolicy")
def detach_policy(call: P, p: dict[str, Any]) -> None:
    call.service.detach_policy(call.scope, p["policyName"], p["target"])


@iot("AttachPrincipalPolicy")
def attach_principal_policy(call: P, p: dict[str, Any]) -> None:
    call.service.attach_policy(call.scope, p["policyName"], p["principal"])


@iot("DetachPrincipalPolicy")
def detach_principal_policy(call: P, p: dict[str, Any]) -> None:
    call.service.detach_policy(call.scope, p["policyName"], p["principal"])


def _policies_page(call: P, p: dict[str, Any], names: list[str]) -> dict[str, Any]:
    page, token = paging.slice_page(names, p.get("marker"), paging.page_size(p, "pageSize", 250))
    return paging.listing("policies", _refs(call.scope, page), "nextMarker", token)


def _targets_page(call: P, p: dict[str, Any]) -> tuple[list[str], str | None]:
    targets, last = call.service.targets_of_policy(call.scope, p["policyName"],
                                                   paging.decode_str(p.get("marker")),
                                                   paging.page_size(p, "pageSize", 250))
    return targets, paging.next_token(last)


@iot("ListAttachedPolicies")
def list_attached_policies(call: P, p: dict[str, Any]) -> dict[str, Any]:
    target = p["target"]
    call.service.require_target(call.scope, target)
    targets = call.service.group_chain(call.scope, target) if p.get("recursive") else [target]
    return _policies_page(call, p, call.service.policies_of(call.scope, targets))


@iot("ListPrincipalPolicies")
def list_principal_policies(call: P, p: dict[str, Any]) -> dict[str, Any]:
    call.service.require_target(call.scope, p["principal"])
    names = call.service.policies_of_target(call.scope, p["principal"])
    if p.get("ascendingOrder") is False:
        names.reverse()
    return _policies_page(call, p, names)


@iot("ListTargetsForPolicy")
def list_targets_for_policy(call: P, p: dict[str, Any]) -> dict[str, Any]:
    targets, marker = _targets_page(call, p)
    return paging.listing("targets", targets, "nextMarker", marker)


@iot("ListPolicyPrincipals")
def list_policy_principals(call: P, p: dict[str, Any]) -> dict[str, Any]:
    targets, marker = _targets_page(call, p)
    return paging.listing("principals", [t for t in targets if ":thinggroup/" not in t],
                          "nextMarker", marker)


@iot("GetEffectivePolicies")
def get_effective_policies(call: P, p: dict[str, Any]) -> dict[str, Any]:
    policies = call.service.effective_policies(call.scope, p.get("principal"),
                                               p.get("thingName"))
    return {"effectivePolicies": [
        {"policyName": r.name, "policyArn": call.scope.arn("policy", r.name),
         "policyDocument": r.document} for r in policies]}
