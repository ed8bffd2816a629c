"""IAM's query-protocol operations, each a thin handler over `IamService`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fleetsim.localcore.api.paging import decode_int, encode
from fleetsim.localcore.api.queryproto import QueryHandler
from fleetsim.localcore.features.iam.service import IamService
from fleetsim.localcore.features.iam.store import RoleRecord
from fleetsim.localcore.scope import Scope

P = dict[str, Any]


def _encoded(document: str) -> str:
    """IAM returns policy documents URL-encoded (RFC 3986); botocore decodes them."""
    return quote(document, safe="")


def _page(items: list[Any], p: P) -> tuple[list[Any], P]:
    start = decode_int(p.get("Marker"))
    size = int(p.get("MaxItems") or 100)
    end = start + size
    more = end < len(items)
    return items[start:end], ({"IsTruncated": True, "Marker": encode(end)} if more
                              else {"IsTruncated": False})


def handlers(service: IamService) -> dict[str, QueryHandler]:
    def role_wire(role: RoleRecord, trust: bool = True) -> P:
        out: P = {"Path": role.path, "RoleName": role.name, "RoleId": role.role_id,
                  "Arn": service.arn(role), "CreateDate": role.created,
                  "MaxSessionDuration": role.max_session}
        if trust:
            out["AssumeRolePolicyDocument"] = _encoded(role.trust_policy)
        if role.description is not None:
            out["Description"] = role.description
        return out

    def create_role(scope: Scope, p: P) -> P:
        return {"Role": role_wire(service.create_role(
            p["RoleName"], p["AssumeRolePolicyDocument"], p.get("Path"),
            p.get("Description"), p.get("MaxSessionDuration")))}

    def get_role(scope: Scope, p: P) -> P:
        return {"Role": role_wire(service.role(p["RoleName"]))}

    def list_roles(scope: Scope, p: P) -> P:
        roles, more = _page(service.list_roles(p.get("PathPrefix")), p)
        return {"Roles": [role_wire(r) for r in roles], **more}

    def delete_role(scope: Scope, p: P) -> None:
        service.delete_role(p["RoleName"])

    def put_role_policy(scope: Scope, p: P) -> None:
        service.put_role_policy(p["RoleName"], p["PolicyName"], p["PolicyDocument"])

    def get_role_policy(scope: Scope, p: P) -> P:
        role = service.role(p["RoleName"]).name
        return {"RoleName": role, "PolicyName": p["PolicyName"],
                "PolicyDocument": _encoded(service.role_policy(role, p["PolicyName"]))}

    def list_role_policies(scope: Scope, p: P) -> P:
        names, more = _page(service.role_policy_names(p["RoleName"]), p)
        return {"PolicyNames": names, **more}

    def delete_role_policy(scope: Scope, p: P) -> None:
        service.delete_role_policy(p["RoleName"], p["PolicyName"])

    def attach_role_policy(scope: Scope, p: P) -> None:
        service.attach(p["RoleName"], p["PolicyArn"])

    def detach_role_policy(scope: Scope, p: P) -> None:
        service.detach(p["RoleName"], p["PolicyArn"])

    def list_attached_role_policies(scope: Scope, p: P) -> P:
        arns, more = _page(service.attached(p["RoleName"]), p)
        return {"AttachedPolicies": [{"PolicyName": arn.rsplit("/", 1)[-1], "PolicyArn": arn}
                                     for arn in arns], **more}

    return {"CreateRole": create_role, "GetRole": get_role, "ListRoles": list_roles,
            "DeleteRole": delete_role, "PutRolePolicy": put_role_policy,
            "GetRolePolicy": get_role_policy, "ListRolePolicies": list_role_policies,
            "DeleteRolePolicy": delete_role_policy, "AttachRolePolicy": attach_role_policy,
            "DetachRolePolicy": detach_role_policy,
            "ListAttachedRolePolicies": list_attached_role_policies}
