"""What the provisioning feature hands out: plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    """What applying a provisioning template produced (RegisterThing's answer, a bulk task's
    RESULTS line, fleet provisioning's accepted payload)."""

    certificate_pem: str | None  # None when the caller asked for no PEM, or no certificate
    resource_arns: dict[str, str]  # "thing", "certificate", "policy" (those the template made)
    thing_name: str | None
    certificate_id: str | None
    policy_names: tuple[str, ...] = ()
    device_configuration: dict[str, Any] = field(default_factory=dict)

    def register_thing_response(self) -> dict[str, Any]:
        """RegisterThing's output members."""
        out: dict[str, Any] = {"resourceArns": dict(self.resource_arns)}
        if self.certificate_pem is not None:
            out["certificatePem"] = self.certificate_pem
        return out


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    """A provisioning template as a resource (CreateProvisioningTemplate)."""

    region: str
    name: str
    description: str | None
    enabled: bool
    role_arn: str
    hook: dict[str, str] | None  # {"targetArn", "payloadVersion"}
    type: str  # FLEET_PROVISIONING | JITP
    default_version: int
    next_version: int
    created: float
    modified: float


@dataclass(frozen=True, slots=True)
class TemplateVersionRecord:
    template_name: str
    version_id: int
    body: str
    created: float
    is_default: bool
