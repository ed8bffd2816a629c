"""IAM's query-protocol operations, each a thin handler over `IamService`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.api.paging import decode_int, encode
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.iam.service import IamService
from fleetsim.localcore.features.iam.store import RoleRecord

operations = Operations()

P = dict[str, Any]
IamCall = Call[IamService]


def _encoded(document: str) -> str:
    """IAM returns policy documents URL-encoded (RFC 3986); botocore decodes them."""
    return quote(document, safe="")


def _page(items: list[Any], p: P) -> tuple[list[Any], P]:
    try:
        start = decode_int(p.get("Marker"))
    except AwsError:
        # IAM answers input it cannot use with ValidationError (IAM API Reference: Common
        # Error Types); a Marker is only valid as a previous answer's Marker.
        raise AwsError("ValidationError", f"The Marker {p['Marker']!r} is not a Marker a "
                       "previous call returned.") from None
    size = p.get("MaxItems") or 100
    end = start + size
    more = end < len(items)
    return items[start:end], ({"IsTruncated": True, "Marker": encode(end)} if more
                              else {"IsTruncated": False})


def _role(service: IamService, role: RoleRecord) -> P:
    out: P = {"Path": role.path, "RoleName": role.name, "RoleId": role.role_id,
              "Arn": service.arn(role), "CreateDate": role.created,
              "MaxSessionDuration": role.max_session,
              "AssumeRolePolicyDocument": _encoded(role.trust_policy)}
    if role.description is not None:
        out["Description"] = role.description
    return out


@operations.iam("CreateRole")
def create_role(call: IamCall, p: P) -> P:
    return {"Role": _role(call.service, call.service.create_role(
        p["RoleName"], p["AssumeRolePolicyDocument"], p.get("Path"),
        p.get("Description"), p.get("MaxSessionDuration")))}


@operations.iam("GetRole")
def get_role(call: IamCall, p: P) -> P:
    return {"Role": _role(call.service, call.service.role(p["RoleName"]))}


@operations.iam("ListRoles")
def list_roles(call: IamCall, p: P) -> P:
    roles, more = _page(call.service.list_roles(p.get("PathPrefix")), p)
    return {"Roles": [_role(call.service, r) for r in roles], **more}


@operations.iam("DeleteRole")
def delete_role(call: IamCall, p: P) -> None:
    call.service.delete_role(p["RoleName"])


@operations.iam("PutRolePolicy")
def put_role_policy(call: IamCall, p: P) -> None:
    call.service.put_role_policy(p["RoleName"], p["PolicyName"], p["PolicyDocument"])


@operations.iam("GetRolePolicy")
def get_role_policy(call: IamCall, p: P) -> P:
    role = call.service.role(p["RoleName"]).name
    return {"RoleName": role, "PolicyName": p["PolicyName"],
            "PolicyDocument": _encoded(call.service.role_policy(role, p["PolicyName"]))}


@operations.iam("ListRolePolicies")
def list_role_policies(call: IamCall, p: P) -> P:
    names, more = _page(call.service.role_policy_names(p["RoleName"]), p)
    return {"PolicyNames": names, **more}


@operations.iam("DeleteRolePolicy")
def delete_role_policy(call: IamCall, p: P) -> None:
    call.service.delete_role_policy(p["RoleName"], p["PolicyName"])


@operations.iam("AttachRolePolicy")
def attach_role_policy(call: IamCall, p: P) -> None:
    call.service.attach(p["RoleName"], p["PolicyArn"])


@operations.iam("DetachRolePolicy")
def detach_role_policy(call: IamCall, p: P) -> None:
    call.service.detach(p["RoleName"], p["PolicyArn"])


@operations.iam("ListAttachedRolePolicies")
def list_attached_role_policies(call: IamCall, p: P) -> P:
    arns, more = _page(call.service.attached(p["RoleName"]), p)
    return {"AttachedPolicies": [{"PolicyName": arn.rsplit("/", 1)[-1], "PolicyArn": arn}
                                 for arn in arns], **more}
