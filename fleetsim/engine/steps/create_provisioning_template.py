"""`create_provisioning_template`: a provisioning template as a resource, for fleet
provisioning by claim (`--type FLEET_PROVISIONING`, the default of create-provisioning-template)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase, retried
from fleetsim.control.clients import AwsClients
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call
from fleetsim.engine.reconcile import document_item, value_item
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase


async def _delete_template(clients: AwsClients, d: dict[str, Any]) -> None:
    """Its versions but the default (which DeleteProvisioningTemplateVersion refuses), then
    the template."""
    iot, name = clients.iot, d["name"]
    async for page in iot.get_paginator("list_provisioning_template_versions").paginate(
            templateName=name):
        for v in page.get("versions", []):
            if not v.get("isDefaultVersion"):
                await retried(iot.delete_provisioning_template_version, templateName=name,
                              versionId=v["versionId"])
    await iot.delete_provisioning_template(templateName=name)


PROVISIONING_TEMPLATE = JournalKind("provisioning_template", Phase.DELETE, _delete_template)


class CreateProvisioningTemplateStep(StepBase):
    kind: Literal["create_provisioning_template"]
    template: str = Field(pattern=r"^[0-9A-Za-z_-]{1,36}$")  # the template's name
    body: str  # the template body file, relative to the scenario
    role_arn: str  # the role AWS IoT assumes to provision
    enabled: bool = True

    file_fields: ClassVar[tuple[str, ...]] = ("body",)


async def run(ctx: RunContext, step: CreateProvisioningTemplateStep) -> None:
    """Described first (DescribeProvisioningTemplate): absent, created; there as declared,
    reused; else drift item by item: another body is fixed by a new template version set as
    the default (CreateProvisioningTemplateVersion), another role or `enabled` with
    UpdateProvisioningTemplate."""
    ledger, name = ctx.reconcile, step.template
    body = Path(step.body).read_text()
    have = await describe(ctx, "DescribeProvisioningTemplate", name, templateName=name)
    if have is None:
        ledger.create(PROVISIONING_TEMPLATE.name, name)
        if ledger.plan:
            return
        await api_call(ctx, "CreateProvisioningTemplate", name,
                       templateName=name, templateBody=body,
                       provisioningRoleArn=step.role_arn, enabled=step.enabled,
                       type="FLEET_PROVISIONING")
        ctx.journal.record(PROVISIONING_TEMPLATE.name, name=name)
        return
    body_items = document_item("template body", have.get("templateBody", ""), body)
    settings = (value_item("provisioning role", have.get("provisioningRoleArn"), step.role_arn)
                + value_item("enabled", have.get("enabled"), step.enabled))
    if not body_items and not settings:
        ledger.reuse(PROVISIONING_TEMPLATE.name, name)
        return
    ledger.drifted(PROVISIONING_TEMPLATE.name, name, body_items + settings)
    if ledger.plan:
        return
    if body_items:
        await api_call(ctx, "CreateProvisioningTemplateVersion", name, templateName=name,
                       templateBody=body, setAsDefault=True)
    if settings:
        await api_call(ctx, "UpdateProvisioningTemplate", name, templateName=name,
                       provisioningRoleArn=step.role_arn, enabled=step.enabled)


KIND = StepKind(CreateProvisioningTemplateStep, run, journals=(PROVISIONING_TEMPLATE,),
                plans=True)
