"""HTTP handlers: RegisterThing and provisioning templates (and their versions) as resources."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.provisioning.records import TemplateRecord
from fleetsim.localcore.features.provisioning.service import ProvisioningService
from fleetsim.localcore.scope import Scope

operations = Operations()
iot = operations.iot
C = Call[ProvisioningService]


@iot("RegisterThing")
def register_thing(call: C, p: dict[str, Any]) -> dict[str, Any]:
    result = call.service.provision_from_template(call.scope, p["templateBody"],
                                                  p.get("parameters") or {})
    return result.register_thing_response()


def _summary(scope: Scope, rec: TemplateRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "templateArn": scope.arn("provisioningtemplate", rec.name), "templateName": rec.name,
        "creationDate": rec.created, "lastModifiedDate": rec.modified, "enabled": rec.enabled,
        "type": rec.type}
    if rec.description is not None:
        out["description"] = rec.description
    return out


@iot("CreateProvisioningTemplate")
def create_template(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rec = call.service.create_template(
        call.scope, p["templateName"], p["templateBody"], p["provisioningRoleArn"],
        description=p.get("description"), enabled=bool(p.get("enabled")),
        hook=p.get("preProvisioningHook"), template_type=p.get("type"))
    return {"templateArn": call.scope.arn("provisioningtemplate", rec.name),
            "templateName": rec.name, "defaultVersionId": rec.default_version}


@iot("DescribeProvisioningTemplate")
def describe_template(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rec = call.service.require_template(call.scope, p["templateName"])
    out = {**_summary(call.scope, rec), "defaultVersionId": rec.default_version,
           "templateBody": call.service.template_body(call.scope, rec).body,
           "provisioningRoleArn": rec.role_arn}
    if rec.hook is not None:
        out["preProvisioningHook"] = dict(rec.hook)
    return out


@iot("ListProvisioningTemplates")
def list_templates(call: C, p: dict[str, Any]) -> dict[str, Any]:
    recs, last = call.service.list_templates(call.scope, paging.decode_str(p.get("nextToken")),
                                             paging.page_size(p))
    out: dict[str, Any] = {"templates": [_summary(call.scope, r) for r in recs]}
    token = paging.next_token(last)
    if token:
        out["nextToken"] = token
    return out


@iot("UpdateProvisioningTemplate")
def update_template(call: C, p: dict[str, Any]) -> None:
    call.service.update_template(
        call.scope, p["templateName"], description=p.get("description"),
        enabled=p.get("enabled"), default_version=p.get("defaultVersionId"),
        role_arn=p.get("provisioningRoleArn"), hook=p.get("preProvisioningHook"),
        remove_hook=bool(p.get("removePreProvisioningHook")))


@iot("DeleteProvisioningTemplate")
def delete_template(call: C, p: dict[str, Any]) -> None:
    call.service.delete_template(call.scope, p["templateName"])


@iot("CreateProvisioningTemplateVersion")
def create_version(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rec, version = call.service.create_template_version(
        call.scope, p["templateName"], p["templateBody"], bool(p.get("setAsDefault")))
    return {"templateArn": call.scope.arn("provisioningtemplate", rec.name),
            "templateName": rec.name, "versionId": version,
            "isDefaultVersion": rec.default_version == version}


@iot("DescribeProvisioningTemplateVersion")
def describe_version(call: C, p: dict[str, Any]) -> dict[str, Any]:
    rec = call.service.require_template(call.scope, p["templateName"])
    v = call.service.template_body(call.scope, rec, int(p["versionId"]))
    return {"versionId": v.version_id, "creationDate": v.created, "templateBody": v.body,
            "isDefaultVersion": v.is_default}


@iot("ListProvisioningTemplateVersions")
def list_versions(call: C, p: dict[str, Any]) -> dict[str, Any]:
    versions = call.service.template_versions(call.scope, p["templateName"])
    page, token = paging.slice_page(versions, p.get("nextToken"), paging.page_size(p))
    out: dict[str, Any] = {"versions": [
        {"versionId": v.version_id, "creationDate": v.created, "isDefaultVersion": v.is_default}
        for v in page]}
    if token:
        out["nextToken"] = token
    return out


@iot("DeleteProvisioningTemplateVersion")
def delete_version(call: C, p: dict[str, Any]) -> None:
    call.service.delete_template_version(call.scope, p["templateName"], int(p["versionId"]))
