"""Provisioning by template: the one engine RegisterThing, bulk registration tasks and fleet
provisioning by claim apply templates with, provisioning templates as resources (and their
versions), and the certificate ownership tokens of fleet provisioning. The only writer of this
feature's tables; it creates things, certificates and policies through their features'
services, in one transaction per template."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError, already_exists, delete_conflict, found, invalid
from fleetsim.localcore.features.provisioning import template as t
from fleetsim.localcore.features.provisioning.records import (
    ProvisionResult,
    TemplateRecord,
    TemplateVersionRecord,
)
from fleetsim.localcore.features.provisioning.store import ProvisioningStore
from fleetsim.localcore.policy_document import PolicyDocumentError, parse_policy_document
from fleetsim.localcore.scope import Scope
from fleetsim.pki import certificate_id, load_certificate

if TYPE_CHECKING:
    from fleetsim.localcore.features.certificates.records import CertificateRecord
    from fleetsim.localcore.features.context import Services
    from fleetsim.localcore.features.registry.records import ThingRecord
    from fleetsim.pki.keys import PrivateKey

# "Device provisioning MQTT API": the certificateOwnershipToken expires after one hour; a
# certificate not activated nor attached to a policy or thing by then is deleted.
OWNERSHIP_TOKEN_TTL_S = 3600.0
# "AWS IoT Core endpoints and quotas": versions per fleet provisioning template.
MAX_TEMPLATE_VERSIONS = 5
TEMPLATE_TYPES = ("FLEET_PROVISIONING", "JITP")
HOOK_PAYLOAD_VERSION = "2020-04-01"


def registration_failure(message: str) -> AwsError:
    """What RegisterThing answers when a resource the template names is missing (e.g. "Thing
    type not found"; botocore's RegisterThing errors)."""
    return AwsError("ResourceRegistrationFailureException", message)


def conflict(message: str) -> AwsError:
    """An OverrideSettings FAIL on a resource that exists ("Provisioning templates")."""
    return AwsError("ResourceConflictsException", message, status=409)


class ProvisioningRejected(Exception):
    """A fleet provisioning request AWS answers on `/rejected`: statusCode, errorCode,
    errorMessage ("Device provisioning MQTT API")."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def payload(self) -> dict[str, Any]:
        return {"statusCode": self.status, "errorCode": self.code, "errorMessage": self.message}


def parse_template(body: str, *, fleet: bool) -> t.Template:
    try:
        return t.parse(body, fleet=fleet)
    except t.TemplateError as e:
        raise invalid(f"The provisioning template is not valid: {e}") from None


class ProvisioningService:
    def __init__(self, db: Database, services: Services, account_id: str,
                 clock: Callable[[], float] = time.time,
                 schedule: Callable[[float, Callable[[], object]], object] | None = None):
        self._db = db
        self._store = ProvisioningStore(db)
        self._services = services
        self._account_id = account_id
        self._clock = clock
        self._schedule = schedule  # (delay, callback): runs the token expiry on time

    # --- applying a template -----------------------------------------------------------------

    def provision_from_template(self, scope: Scope, template_body: str,
                                parameters: dict[str, str], *,
                                certificate_pem_out: bool = True) -> ProvisionResult:
        """Apply `template_body` with `parameters` in one transaction: every resource it
        declares, or nothing. Raises `AwsError` with AWS's codes (InvalidRequestException for
        a template or parameters that are not valid, ResourceRegistrationFailureException for
        a thing type, thing group or policy that does not exist, ResourceConflictsException
        for an `OverrideSettings` FAIL)."""
        template = parse_template(template_body, fleet=False)
        return self.apply(scope, template, parameters, certificate_pem_out=certificate_pem_out)

    def apply(self, scope: Scope, template: t.Template, parameters: dict[str, str], *,
              certificate_pem_out: bool = True) -> ProvisionResult:
        try:
            rendered = t.render(template, parameters)
        except t.TemplateError as e:
            raise invalid(f"The provisioning template cannot be applied: {e}") from None
        self._check_references(scope, rendered)
        with self._db.transaction():
            cert = self._apply_certificate(scope, rendered.certificate)
            cert_arn = scope.arn("cert", cert.id) if cert else None
            policy_names = [self._apply_policy(scope, p) for p in rendered.policies]
            thing = self._apply_thing(scope, rendered.thing) if rendered.thing else None
            if cert_arn is not None:
                for name in policy_names:
                    self._services.policies.attach_policy(scope, name, cert_arn)
                if thing is not None:
                    self._services.registry.attach_thing_principal(scope, thing.name, cert_arn)
        arns: dict[str, str] = {}
        if cert_arn is not None:
            arns["certificate"] = cert_arn
        if thing is not None:
            arns["thing"] = scope.arn("thing", thing.name)
        if policy_names:
            arns["policy"] = scope.arn("policy", policy_names[-1])
        return ProvisionResult(cert.pem if cert and certificate_pem_out else None, arns,
                               thing.name if thing else None, cert.id if cert else None,
                               tuple(policy_names), rendered.device_configuration)

    def _check_references(self, scope: Scope, rendered: t.Rendered) -> None:
        """Everything the template names must exist before anything is written (so that no
        announcement goes out for a registration that then fails)."""
        thing = rendered.thing
        if thing is not None:
            if thing.type_name:
                rec = self._registry_lookup_type(scope, thing.type_name)
                if rec is None:
                    raise registration_failure(f"Thing type {thing.type_name} not found.")
                if rec.deprecated:
                    raise registration_failure(f"Thing type {thing.type_name} is deprecated: "
                                               "no new thing can be created with it.")
            for group in thing.groups or ():
                if self._services.registry.get_group(scope, group) is None:
                    raise registration_failure(f"Thing group {group} not found.")
            if thing.package_versions:
                # AWS documents no error of its own for a PackageVersions naming what the
                # Software Package Catalog does not hold; RegisterThing's error for a resource
                # the template names that does not exist is the nearest.
                missing = self._services.get("packages").missing(scope, thing.package_versions)
                if missing is not None:
                    raise registration_failure(f"Resource {thing.logical_name}: {missing}")
        cert = rendered.certificate
        if cert is not None and cert.certificate_id is not None and \
                self._services.certificates.get_certificate(scope, cert.certificate_id) is None:
            raise registration_failure(f"Certificate {cert.certificate_id} not found.")
        for policy in rendered.policies:
            name = policy.name or ""
            if policy.document is not None:
                try:
                    parse_policy_document(policy.document)
                except PolicyDocumentError as e:
                    raise AwsError("MalformedPolicyException",
                                   f"Resource {policy.logical_name}: {e}") from None
            elif self._services.policies.get_policy(scope, name) is None:
                raise registration_failure(f"Policy {name} not found.")

    def _registry_lookup_type(self, scope: Scope, name: str) -> Any:
        try:
            return self._services.registry.require_thing_type(scope, name)
        except AwsError:
            return None

    def _apply_certificate(self, scope: Scope, spec: t.CertificateSpec | None
                           ) -> CertificateRecord | None:
        if spec is None:
            return None
        certs = self._services.certificates
        if spec.csr is not None:
            return certs.create_certificate_from_csr(scope, spec.csr,
                                                     (spec.status or "ACTIVE") == "ACTIVE")
        existing: CertificateRecord | None
        if spec.certificate_id is not None:
            existing = certs.require_certificate(scope, spec.certificate_id)
        else:
            assert spec.pem is not None
            cert_id = _certificate_id_of_pem(spec.pem)
            existing = certs.get_certificate(scope, cert_id)
            if existing is None:
                return certs.register_certificate(scope, spec.pem, spec.ca_pem,
                                                  spec.status or "ACTIVE")
        # An existing certificate takes the template's Status ("the certificate status changes
        # to ACTIVE or INACTIVE as described in the template") unless OverrideSettings keep it.
        action = spec.overrides.get("Status", "REPLACE")
        if spec.status is not None and spec.status != existing.status:
            if action == "FAIL":
                raise conflict(f"Certificate {existing.id} exists with status "
                               f"{existing.status}, not {spec.status}.")
            if action == "REPLACE":
                certs.update_certificate(scope, existing.id, spec.status)
                existing = certs.require_certificate(scope, existing.id)
        return existing

    def _apply_policy(self, scope: Scope, spec: t.PolicySpec) -> str:
        """The policy's name, created if the template gives its document (named after the
        document's hash when it has no PolicyName, "Provisioning templates")."""
        policies = self._services.policies
        if spec.document is None:
            return policies.require_policy(scope, spec.name or "").name
        name = spec.name or hashlib.sha256(spec.document.encode()).hexdigest()
        existing = policies.get_policy(scope, name)
        if existing is None:
            return policies.create_policy(scope, name, spec.document).name
        if _same_document(existing.document, spec.document):
            return name
        action = spec.overrides.get("PolicyDocument", "DO_NOTHING")
        if action == "FAIL":
            raise conflict(f"Policy {name} exists with a different document.")
        if action == "REPLACE":
            policies.create_policy_version(scope, name, spec.document, set_default=True)
        return name

    def _apply_thing(self, scope: Scope, spec: t.ThingSpec) -> ThingRecord:
        registry = self._services.registry
        existing = registry.get_thing(scope, spec.name)
        if existing is None:
            thing = registry.create_thing(scope, spec.name, spec.type_name,
                                          spec.attributes or {}, spec.billing_group)
            for group in spec.groups or ():
                registry.add_thing_to_group(scope, registry.require_group(scope, group), thing)
            if spec.package_versions:
                self._services.get("packages").associate(scope, spec.name,
                                                         spec.package_versions)
            return thing
        ov = spec.overrides
        if spec.attributes is not None and spec.attributes != existing.attributes:
            action = ov.get("AttributePayload", "DO_NOTHING")
            if action == "FAIL":
                raise conflict(f"Thing {spec.name} exists with different attributes.")
            if action in ("REPLACE", "MERGE"):
                existing = registry.update_thing(scope, spec.name, attribute_payload={
                    "attributes": spec.attributes, "merge": action == "MERGE"})
        if spec.type_name is not None and spec.type_name != existing.type_name:
            action = ov.get("ThingTypeName", "DO_NOTHING")
            if action == "FAIL":
                raise conflict(f"Thing {spec.name} exists with another thing type.")
            if action == "REPLACE":
                existing = registry.update_thing(scope, spec.name,
                                                 thing_type_name=spec.type_name)
        if spec.groups is not None:
            current = set(registry.groups_of_thing(scope, spec.name))
            wanted = set(spec.groups)
            action = ov.get("ThingGroups", "DO_NOTHING")
            if action == "FAIL" and current != wanted:
                raise conflict(f"Thing {spec.name} exists in other thing groups.")
            if action in ("REPLACE", "MERGE"):
                remove = sorted(current - wanted) if action == "REPLACE" else []
                registry.update_thing_groups_for_thing(scope, spec.name,
                                                       sorted(wanted - current), remove)
        if spec.package_versions is not None:
            self._apply_package_versions(scope, spec.name, spec.package_versions,
                                         ov.get("PackageVersions", "DO_NOTHING"))
        return existing

    def _apply_package_versions(self, scope: Scope, thing: str, wanted: dict[str, str],
                                action: str) -> None:
        """An existing thing's package versions (its `$package` shadow's reported state),
        under the template's OverrideSettings (DO_NOTHING, REPLACE or FAIL)."""
        packages = self._services.get("packages")
        if packages.installed(scope, thing) == wanted:
            return
        if action == "FAIL":
            raise conflict(f"Thing {thing} exists with other package versions.")
        if action == "REPLACE":
            packages.associate(scope, thing, wanted, replace_all=True)

    # --- provisioning templates as resources -------------------------------------------------

    def require_template(self, scope: Scope, name: str) -> TemplateRecord:
        return found(self._store.get_template(scope.region, name),
                     f"The provisioning template {name} does not exist.")

    def create_template(self, scope: Scope, name: str, body: str, role_arn: str, *,
                        description: str | None = None, enabled: bool = False,
                        hook: dict[str, Any] | None = None,
                        template_type: str | None = None) -> TemplateRecord:
        kind = template_type or "FLEET_PROVISIONING"
        if kind not in TEMPLATE_TYPES:
            raise invalid(f"type must be one of {', '.join(TEMPLATE_TYPES)}, not {kind!r}.")
        if self._store.get_template(scope.region, name) is not None:
            raise already_exists(f"The provisioning template {name} already exists.", name,
                                 scope.arn("provisioningtemplate", name))
        parse_template(body, fleet=kind == "FLEET_PROVISIONING")
        now = self._clock()
        rec = TemplateRecord(scope.region, name, description, enabled, role_arn,
                             self._hook(hook, kind), kind, 1, 2, now, now)
        with self._db.transaction():
            self._store.put_template(rec)
            self._store.add_version(scope.region, name, 1, body, now)
        return rec

    @staticmethod
    def _hook(hook: dict[str, Any] | None, kind: str) -> dict[str, str] | None:
        if not hook:
            return None
        if kind != "FLEET_PROVISIONING":
            raise invalid("A pre-provisioning hook can be set on FLEET_PROVISIONING templates "
                          "only.")
        target = str(hook.get("targetArn", ""))
        if not target.startswith("arn:aws:lambda:"):
            raise invalid(f"The pre-provisioning hook's targetArn {target!r} is not a Lambda "
                          "function ARN (only Lambda functions are supported).")
        return {"targetArn": target,
                "payloadVersion": str(hook.get("payloadVersion") or HOOK_PAYLOAD_VERSION)}

    def template_body(self, scope: Scope, rec: TemplateRecord,
                      version_id: int | None = None) -> TemplateVersionRecord:
        wanted = rec.default_version if version_id is None else version_id
        for version in self._store.versions(rec):
            if version.version_id == wanted:
                return version
        raise AwsError("ResourceNotFoundException",
                       f"Version {wanted} of provisioning template {rec.name} does not exist.")

    def list_templates(self, scope: Scope, after: str, limit: int
                       ) -> tuple[list[TemplateRecord], str | None]:
        return self._store.list_templates(scope.region, after, limit)

    def update_template(self, scope: Scope, name: str, *, description: str | None = None,
                        enabled: bool | None = None, default_version: int | None = None,
                        role_arn: str | None = None, hook: dict[str, Any] | None = None,
                        remove_hook: bool = False) -> TemplateRecord:
        rec = self.require_template(scope, name)
        if default_version is not None:
            self.template_body(scope, rec, default_version)
        new_hook = None if remove_hook else (self._hook(hook, rec.type) if hook else rec.hook)
        updated = TemplateRecord(
            rec.region, rec.name, rec.description if description is None else description,
            rec.enabled if enabled is None else enabled, role_arn or rec.role_arn, new_hook,
            rec.type, default_version or rec.default_version, rec.next_version, rec.created,
            self._clock())
        with self._db.transaction():
            self._store.put_template(updated)
        return updated

    def delete_template(self, scope: Scope, name: str) -> None:
        rec = self.require_template(scope, name)
        with self._db.transaction():
            self._store.delete_template(scope.region, rec.name)

    def create_template_version(self, scope: Scope, name: str, body: str,
                                set_default: bool) -> tuple[TemplateRecord, int]:
        rec = self.require_template(scope, name)
        parse_template(body, fleet=rec.type == "FLEET_PROVISIONING")
        if len(self._store.versions(rec)) >= MAX_TEMPLATE_VERSIONS:
            raise AwsError("VersionsLimitExceededException",
                           f"The provisioning template {name} already has the maximum number "
                           f"of versions ({MAX_TEMPLATE_VERSIONS}).")
        now = self._clock()
        version = rec.next_version
        updated = TemplateRecord(rec.region, rec.name, rec.description, rec.enabled,
                                 rec.role_arn, rec.hook, rec.type,
                                 version if set_default else rec.default_version,
                                 version + 1, rec.created, now)
        with self._db.transaction():
            self._store.add_version(scope.region, name, version, body, now)
            self._store.put_template(updated)
        return updated, version

    def template_versions(self, scope: Scope, name: str) -> list[TemplateVersionRecord]:
        return self._store.versions(self.require_template(scope, name))

    def delete_template_version(self, scope: Scope, name: str, version_id: int) -> None:
        rec = self.require_template(scope, name)
        version = self.template_body(scope, rec, version_id)
        if version.is_default:
            raise delete_conflict("The default version of a provisioning template cannot be "
                                  "deleted.")
        with self._db.transaction():
            self._store.delete_version(scope.region, name, version_id)

    # --- fleet provisioning by claim ---------------------------------------------------------

    def _ownership_token(self, scope: Scope, cert: CertificateRecord) -> str:
        token = secrets.token_urlsafe(48)
        with self._db.transaction():
            self._store.add_token(token, scope.region, cert.id,
                                  self._clock() + OWNERSHIP_TOKEN_TTL_S)
        if self._schedule is not None:
            self._schedule(OWNERSHIP_TOKEN_TTL_S, self.expire_ownership_tokens)
        return token

    async def create_keys_and_certificate(self, scope: Scope
                                          ) -> tuple[CertificateRecord, PrivateKey, str]:
        """CreateKeysAndCertificate over MQTT: a PENDING_ACTIVATION certificate, its key and
        its ownership token."""
        self.expire_ownership_tokens()
        cert, key = await self._services.certificates.create_keys_and_certificate(
            scope, False, status="PENDING_ACTIVATION")
        return cert, key, self._ownership_token(scope, cert)

    def create_certificate_from_csr(self, scope: Scope, csr: str
                                    ) -> tuple[CertificateRecord, str]:
        self.expire_ownership_tokens()
        cert = self._services.certificates.create_certificate_from_csr(scope, csr, False,
                                                              status="PENDING_ACTIVATION")
        return cert, self._ownership_token(scope, cert)

    def register_thing(self, scope: Scope, template_name: str, token: str,
                       parameters: dict[str, str]) -> ProvisionResult:
        """RegisterThing over MQTT; raises ProvisioningRejected."""
        self.expire_ownership_tokens()
        rec = self._store.get_template(scope.region, template_name)
        if rec is None or rec.type != "FLEET_PROVISIONING":
            raise ProvisioningRejected(404, "ResourceNotFound",
                                       f"Provisioning template {template_name} not found.")
        if not rec.enabled:
            raise ProvisioningRejected(400, "InvalidRequest",
                                       f"Provisioning template {template_name} is disabled.")
        held = self._store.token(token) if token else None
        if held is None or held[0] != scope.region:
            raise ProvisioningRejected(400, "InvalidCertificateOwnershipToken",
                                       "The certificateOwnershipToken is not valid or expired.")
        if rec.hook is not None:
            # "Pre-provisioning hooks": if the function fails the request fails with
            # ACCESS_DENIED. Local core cannot invoke Lambda functions yet.
            raise ProvisioningRejected(
                403, "AccessDenied",
                f"The pre-provisioning hook {rec.hook['targetArn']} could not be invoked: "
                "local core has no Lambda feature yet.")
        template = parse_template(self.template_body(scope, rec).body, fleet=True)
        values = {**parameters, "AWS::IoT::Certificate::Id": held[1]}
        try:
            result = self.apply(scope, template, values, certificate_pem_out=False)
        except AwsError as e:
            raise ProvisioningRejected(e.status or 400, e.code.removesuffix("Exception"),
                                       e.message) from None
        with self._db.transaction():
            self._store.delete_token(token)
        return result

    def expire_ownership_tokens(self) -> int:
        """Drop expired tokens and delete their certificates if still neither activated nor
        attached to a policy or thing; returns how many certificates were deleted."""
        deleted = 0
        for token, region, cert_id in self._store.expired_tokens(self._clock()):
            scope = Scope(self._account_id, region)
            cert = self._services.certificates.get_certificate(scope, cert_id)
            arn = scope.arn("cert", cert_id)
            with self._db.transaction():
                self._store.delete_token(token)
                if cert is not None and cert.status != "ACTIVE" and \
                        not self._services.registry.things_of_principal(scope, arn) and \
                        not self._services.policies.policies_of_target(scope, arn):
                    self._services.certificates.delete_certificate(scope, cert_id, force=False)
                    deleted += 1
        return deleted


def _certificate_id_of_pem(pem: str) -> str:
    try:
        cert = load_certificate(pem.encode())
    except ValueError as e:
        raise AwsError("CertificateValidationException",
                       "CertificatePem is not a valid PEM-encoded X.509 certificate.") from e
    return certificate_id(cert.public_bytes(Encoding.DER))


def _same_document(a: str, b: str) -> bool:
    try:
        return bool(parse_policy_document(a) == parse_policy_document(b))
    except PolicyDocumentError:
        return a == b
