"""`create_provisioning_template`: a provisioning template as a resource, for fleet
provisioning by claim (`--type FLEET_PROVISIONING`, the default of create-provisioning-template)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase

PROVISIONING_TEMPLATE = JournalKind(
    "provisioning_template", Phase.DELETE,
    lambda c, d: c.iot.delete_provisioning_template(templateName=d["name"]))


class CreateProvisioningTemplateStep(StepBase):
    kind: Literal["create_provisioning_template"]
    template: str = Field(pattern=r"^[0-9A-Za-z_-]{1,36}$")  # the template's name
    body: str  # the template body file, relative to the scenario
    role_arn: str  # the role AWS IoT assumes to provision
    enabled: bool = True

    file_fields: ClassVar[tuple[str, ...]] = ("body",)


async def run(ctx: RunContext, step: CreateProvisioningTemplateStep) -> None:
    await api_call(ctx, "CreateProvisioningTemplate", step.template,
                   templateName=step.template, templateBody=Path(step.body).read_text(),
                   provisioningRoleArn=step.role_arn, enabled=step.enabled,
                   type="FLEET_PROVISIONING")
    ctx.journal.record(PROVISIONING_TEMPLATE.name, name=step.template)


KIND = StepKind(CreateProvisioningTemplateStep, run, journals=(PROVISIONING_TEMPLATE,))
