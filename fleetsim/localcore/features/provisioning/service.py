"""Provisioning by template: the one engine RegisterThing, bulk registration tasks and fleet
provisioning by claim apply templates with."""

from __future__ import annotations

from fleetsim.localcore.features.provisioning.records import ProvisionResult
from fleetsim.localcore.scope import Scope


class ProvisioningService:
    def provision_from_template(self, scope: Scope, template_body: str,
                                parameters: dict[str, str], *,
                                certificate_pem_out: bool = True) -> ProvisionResult:
        """Apply `template_body` with `parameters` in one transaction: every resource it
        declares, or nothing. Raises `AwsError` with AWS's codes (InvalidRequestException for
        a template or parameters that are not valid, ResourceRegistrationFailureException for
        a thing type, thing group, billing group or policy that does not exist,
        ResourceConflictsException for an `OverrideSettings` FAIL)."""
        raise NotImplementedError
