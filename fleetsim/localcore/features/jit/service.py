"""Just-in-time registration (JITR) and provisioning (JITP) at CONNECT, as AWS IoT does them.

A client certificate the registry does not know, signed by a registered CA (the device may
send the CA in its chain or not) is registered as PENDING_ACTIVATION when the CA is ACTIVE and
its auto-registration is ENABLE ("Register a client certificate when the client connects to
AWS IoT just-in-time registration (JITR)"); the client must send SNI ("Just-in-time
provisioning": "Presenting the CA certificate is optional, but the device is required to send
the Server Name Indication (SNI) extension").

- JITP: the CA has a registration config (template body, or template name): the template runs
  as RegisterThing with the parameters of the certificate's subject (`subject.py`); the
  certificate then becomes ACTIVE. A template that fails leaves the certificate
  PENDING_ACTIVATION; the next connect tries again.
- JITR: no template: the certificate stays PENDING_ACTIVATION and AWS publishes
  `$aws/events/certificates/registered/<caCertificateId>` - at registration (the events
  feature does, on `CertificateRegistered(just_in_time=True)`) and at each later connect while
  it stays PENDING_ACTIVATION (here), so a retrying device triggers the rule again.

Either way the connection that triggered it is refused ("The connection was lost ... normal
behaviour", the workshop's JITP lab); the next one is admitted once the certificate is ACTIVE.
Everything runs on the event loop without awaiting, so devices of one CA connecting at once
are each registered exactly once. Each refusal is logged with its reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from cryptography import x509

from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.certificates.records import CaCertificateRecord
from fleetsim.localcore.features.context import Services
from fleetsim.localcore.features.events.payloads import certificate_registered_event
from fleetsim.localcore.features.jit.subject import template_parameters
from fleetsim.localcore.principal import Principal, UnknownCertificate
from fleetsim.localcore.scope import Scope
from fleetsim.pki import certificate_id

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]


class JitService:
    def __init__(self, services: Services, scope: Scope, publish: Publish):
        self._services = services
        self._scope = scope  # the broker's account and region
        self._publish = publish
        self.registered = 0  # certificates registered just in time
        self.provisioned = 0  # of which provisioned by a template (JITP)

    async def on_unknown_certificate(self, unknown: UnknownCertificate) -> Principal | None:
        """The broker's `unknown_certificate` hook: always refuses this connection."""
        self.connect(unknown)
        return None

    def connect(self, unknown: UnknownCertificate) -> None:
        cert_id = certificate_id(unknown.cert_der)
        if unknown.pending is not None:
            self._again(unknown, cert_id, unknown.pending)
            return
        refusal = self._register(unknown, cert_id)
        if refusal:
            log.warning("just-in-time registration refused certificate %s of client %r: %s",
                        cert_id[:12], unknown.client_id, refusal)

    def _register(self, unknown: UnknownCertificate, cert_id: str) -> str | None:
        """Registers the certificate (and provisions it for JITP); the reason it does not
        qualify otherwise."""
        certs, scope = self._services.certificates, self._scope
        try:
            cert = x509.load_der_x509_certificate(unknown.cert_der)
        except ValueError:
            return "the certificate cannot be parsed"
        ca = certs.issuing_ca(scope, cert)
        if ca is None:
            return "it is not signed by a CA certificate registered in this account and region"
        if ca.status != "ACTIVE":
            return f"its CA certificate {ca.id} is {ca.status}"
        if ca.auto_registration != "ENABLE":
            return f"auto-registration is not enabled on its CA certificate {ca.id}"
        if not unknown.server_name:
            return "the client sent no Server Name Indication (SNI), which just-in-time " \
                   "registration requires"
        registered = certs.auto_register_certificate(scope, unknown.cert_der)
        if registered is None:  # registered meanwhile (cannot happen on one loop)
            return "it is already registered"
        self.registered += 1
        log.info("certificate %s of client %r registered just in time (CA %s)", cert_id[:12],
                 unknown.client_id, ca.id[:12])
        if _template_of(ca) is not None:
            self._provision(unknown, cert, cert_id, ca)
        return None

    def _again(self, unknown: UnknownCertificate, cert_id: str, pending: Principal) -> None:
        """A PENDING_ACTIVATION certificate connects again."""
        ca_id = pending.ca_certificate_id
        assert ca_id is not None
        certs, scope = self._services.certificates, self._scope
        try:
            ca: CaCertificateRecord | None = certs.require_ca(scope, ca_id)
        except AwsError:
            ca = None
        if ca is not None and _template_of(ca) is not None:
            self._provision(unknown, x509.load_der_x509_certificate(unknown.cert_der),
                            cert_id, ca)
            return
        rec = certs.get_certificate(scope, cert_id)
        if rec is None or rec.status != "PENDING_ACTIVATION":
            return
        topic, payload = certificate_registered_event(scope.account_id, cert_id, ca_id,
                                                      rec.status, rec.created)
        self._publish(topic, json.dumps(payload).encode())
        log.info("certificate %s of client %r is PENDING_ACTIVATION: registration event "
                 "published again, connection refused", cert_id[:12], unknown.client_id)

    def _provision(self, unknown: UnknownCertificate, cert: x509.Certificate, cert_id: str,
                   ca: CaCertificateRecord) -> None:
        """JITP: the CA's template as RegisterThing; the certificate ACTIVE if it succeeds."""
        certs, scope = self._services.certificates, self._scope
        try:
            body = self._template_body(ca)
            provisioning = self._services.get("provisioning")
            result = provisioning.provision_from_template(
                scope, body, template_parameters(cert.subject, cert_id),
                certificate_pem_out=False)
            rec = certs.require_certificate(scope, cert_id)
            if rec.status == "PENDING_ACTIVATION":
                certs.update_certificate(scope, cert_id, "ACTIVE")
        except AwsError as e:
            log.warning("just-in-time provisioning of certificate %s of client %r failed "
                        "(%s: %s); it stays PENDING_ACTIVATION", cert_id[:12],
                        unknown.client_id, e.code, e.message)
            return
        except LookupError:
            log.warning("just-in-time provisioning of certificate %s needs the provisioning "
                        "feature, which is not installed", cert_id[:12])
            return
        self.provisioned += 1
        log.info("certificate %s of client %r provisioned just in time (thing %s); the "
                 "device is admitted at its next connect", cert_id[:12], unknown.client_id,
                 result.thing_name)

    def _template_body(self, ca: CaCertificateRecord) -> str:
        template = _template_of(ca)
        assert template is not None
        if isinstance(template, str):
            return template
        provisioning = self._services.get("provisioning")
        rec = provisioning.require_template(self._scope, template[1])
        return str(provisioning.template_body(self._scope, rec).body)


def _template_of(ca: CaCertificateRecord) -> str | tuple[str, str] | None:
    """The CA's JITP template: its body, or ("name", template name); None for JITR."""
    config: dict[str, Any] = ca.registration_config or {}
    if config.get("templateBody"):
        return str(config["templateBody"])
    if config.get("templateName"):
        return ("name", str(config["templateName"]))
    return None
