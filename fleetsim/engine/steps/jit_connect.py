"""`jit_connect`: a fleet whose certificates are signed by the scenario's CA comes online
just in time (JITP or JITR), every device retrying until admitted.

First the batch leaves the factory (not timed): per device a key (the fleet's key type), a
certificate signed by the CA in `ca` (subject: the thing name as CN plus `subject`) with the CA
after it in the chain as the workshop's `cat deviceCert.crt rootCA.pem` (`present_ca`), the
identity saved (key 0600) and its TLS context. Then every device powers up at once (or as
`pacing` says): CONNECT, refused while the certificate is not ACTIVE ("The connection was lost
... normal behaviour"), retried as a device does, with exponential back-off and full jitter
and nothing else (a device has no credentials to look itself up in the registry). With
`watch_registry` one watcher lists the CA's certificates (ListCertificatesByCA) twice a second
for the registration phase. Measured (µs): `jit.first_attempt` (the first, refused, CONNECT),
`jit.registration` (from the first attempt until the watcher sees the certificate ACTIVE:
JITP's template, or JITR's rule and function), `jit.admitted` (until CONNACK),
`jit.first_publish` (until the first publish is acknowledged, with `publish`), and
`jit.fleet_online` (one figure: from power-up until the last device is admitted and has
published); counters `jit.attempts` and `jit.devices_by_attempts.<n>`. With `function` (JITR: the
function the topic rule invokes), a certificate the watcher has not seen ACTIVE after the
second refusal sends the device to the function's log group (`/aws/lambda/<function>`): an
error of the invocation that handled its certificate fails the device with that error
(`jit.function_errors`), not a time-out.

A device whose stored identity (an earlier kept run's) holds a certificate the CA's listing
(ListCertificatesByCA, one listing for the fleet) shows ACTIVE keeps it: registered already,
it is admitted at its first attempt and nothing is registered or provisioned again (counted
reused). A new identity's files are journaled (`identity_files`) so that clean-up removes
them once the CA's clean-up has removed its certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import BaseModel, ConfigDict, field_validator

from fleetsim.control.errors import ApiError
from fleetsim.device import DeviceError, DeviceIdentity, DeviceSession, IdentityStore
from fleetsim.device.reconnect import ReconnectPolicy
from fleetsim.device.tls import DeviceSSLContext
from fleetsim.engine import devices as dev
from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.function_logs import invocation_error
from fleetsim.engine.reconcile import short
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.pki import CertificateAuthority, certificate_id, certificate_pem, load_private_key
from fleetsim.pki.ca_store import load_or_create_ca
from fleetsim.pki.certs import SUBJECT_OIDS, subject_name
from fleetsim.runtime import cancel_and_wait
from fleetsim.scenario.model import Duration, FleetStep, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import Template
from fleetsim.target import Target

CLIENT_ID_NAMES = (DEVICE_NAMES - {"client_id"}) | {"certificate_id"}
LOCAL_SERVER_NAME = "localhost"  # a name of local core's server certificate


class FirstPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str
    payload: str = '{"device": "{thing_name}"}'
    qos: Literal[0, 1] = 1


class JitConnectStep(FleetStep):
    kind: Literal["jit_connect"]
    ca: str  # the CA folder a register_ca step registered (relative to the scenario)
    subject: dict[str, str] = {}  # country, organization, ... (templated); CN = thing name
    present_ca: bool = True  # send the CA after the device certificate
    client_id: str = "{thing_name}"  # may use {certificate_id} (JITR: jitr-{certificate_id})
    publish: FirstPublish | None = None
    retry_base: Duration = 0.5
    retry_cap: Duration = 5.0
    give_up_after: Duration = 120.0
    timeout: Duration = 10.0  # per CONNECT
    watch_registry: bool = True
    # JITR: the function the topic rule invokes. While a device's certificate stays
    # PENDING_ACTIVATION its log group is read for the error of the invocation that handled the
    # certificate; one found fails the device with it (the run reports it).
    function: str | None = None

    needs_connection: ClassVar[bool] = False
    dir_fields: ClassVar[tuple[str, ...]] = ("ca",)
    _durations = field_validator("retry_base", "retry_cap", "give_up_after", "timeout",
                                 mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        scope.connected.add(self.fleet)
        problems = template_problems((*at, "client_id"), self.client_id, CLIENT_ID_NAMES)
        for field, value in self.subject.items():
            if field not in SUBJECT_OIDS or field == "common_name":
                problems.append(((*at, "subject", field), f"unknown subject field; use "
                                 f"{', '.join(SUBJECT_OIDS)} (the CN is the thing name)"))
            problems += template_problems((*at, "subject", field), value, DEVICE_NAMES)
        if self.publish is not None:
            problems += template_problems((*at, "publish", "payload"), self.publish.payload,
                                          DEVICE_NAMES)
        return problems


def server_name(target: Target) -> str | None:
    """The SNI a device sends: AWS endpoints are host names already; local core listens on an
    IP address, for which TLS sends no SNI, so name it by its certificate's host name."""
    try:
        ipaddress.ip_address(target.mqtt_host)
    except ValueError:
        return None
    return LOCAL_SERVER_NAME if target.kind == "local" else None


async def make_identity(ctx: RunContext, d: Device, ca: CertificateAuthority,
                        subject: dict[str, str], present_ca: bool) -> DeviceIdentity:
    """A key and a certificate signed by `ca`, saved with the fleet's identities."""
    key_pem = await ctx.keys.new_key_pem(d.fleet.key_type)
    cert = ca.issue(load_private_key(key_pem).public_key(),
                    subject_name(d.thing_name, **subject))
    chain = certificate_pem(cert) + (certificate_pem(ca.cert) if present_ca else b"")
    identity = DeviceIdentity(d.fleet.name, d.index, d.thing_name, d.fleet.key_type,
                              key_pem).with_certificate(chain)
    identity = IdentityStore(ctx.identities_dir, d.fleet.name).save(identity)
    return identity


async def ca_statuses(ctx: RunContext, ca_id: str) -> dict[str, str]:
    """The status of every certificate the CA signed that the registry holds, by id
    (ListCertificatesByCA, 250 a page)."""
    statuses: dict[str, str] = {}
    params: dict[str, Any] = {"caCertificateId": ca_id, "pageSize": 250}
    while True:
        with ctx.metrics.time("api.ListCertificatesByCA"):  # api_call would name it by_c_a
            page = await ctx.iot.list_certificates_by_ca(**params)
        statuses.update((c["certificateId"], c["status"]) for c in page.get("certificates", ()))
        if not page.get("nextMarker"):
            return statuses
        params["marker"] = page["nextMarker"]


def stored_active(ctx: RunContext, d: Device, statuses: dict[str, str]
                  ) -> DeviceIdentity | None:
    """The device's stored identity if the registry holds its certificate ACTIVE."""
    stored = dev.load_identity(ctx, d)
    if stored is None or stored.certificate_id is None:
        return None
    if statuses.get(stored.certificate_id) == "ACTIVE":
        return stored
    ctx.metrics.incr("identities.reprovisioned")
    ctx.reconcile.drifted(prov.CERTIFICATE.name, d.thing_name, [
        f"stored certificate {short(stored.certificate_id)} is "
        f"{statuses.get(stored.certificate_id, 'gone').lower()}: a new one is made"])
    return None


async def _status(ctx: RunContext, cert_id: str) -> dict[str, Any] | None:
    try:
        answer = await api_call(ctx, "DescribeCertificate", cert_id,
                                expected=frozenset({"ResourceNotFoundException"}),
                                certificateId=cert_id)
    except ApiError:
        return None
    description: dict[str, Any] = answer["certificateDescription"]
    return description


class RegistryWatcher:
    """Watches the registry for the fleet, as an operator's console would: one
    ListCertificatesByCA sweep (250 a page) every `interval` seconds, recording for each
    device's certificate when it is first seen ACTIVE (`jit.registration`, to the sweep's
    resolution) and its ARN. One sweep costs a few calls whatever the fleet's size; a call per
    device and refusal (what the devices used to do) cost more than the devices' own TLS."""

    def __init__(self, ctx: RunContext, ca_id: str, interval: float = 0.5):
        self._ctx, self._ca_id, self._interval = ctx, ca_id, interval
        self.started: dict[str, float] = {}  # certificate id -> its device's first attempt
        self.arns: dict[str, str] = {}  # certificate id -> ARN, once seen ACTIVE

    async def run(self) -> None:
        while True:
            with contextlib.suppress(ClientError, BotoCoreError):  # counted; retried next
                await self._sweep()
            await asyncio.sleep(self._interval)

    async def _sweep(self) -> None:
        marker: str | None = None
        while True:
            with self._ctx.metrics.time("api.ListCertificatesByCA"):  # no api_call: its
                page = await self._ctx.iot.list_certificates_by_ca(  # name would be by_c_a
                    caCertificateId=self._ca_id, pageSize=250,
                    **({"marker": marker} if marker else {}))
            now = time.perf_counter()
            for c in page.get("certificates", ()):
                cert_id, start = c["certificateId"], self.started.get(c["certificateId"])
                if c["status"] == "ACTIVE" and start is not None and cert_id not in self.arns:
                    self.arns[cert_id] = c["certificateArn"]
                    self._ctx.metrics.record("jit.registration", (now - start) * 1e6)
            marker = page.get("nextMarker")
            if not marker:
                return


async def _function_failed(ctx: RunContext, function: str, d: Device, cert_id: str,
                           since_ms: int) -> None:
    """Fails the device if the JITR function's invocation for its certificate failed."""
    error = await invocation_error(ctx, function, cert_id, since_ms)
    if error is not None:
        ctx.metrics.incr("jit.function_errors")
        raise UserError(f"{d.thing_name}: the JITR function {function} failed for certificate "
                        f"{cert_id[:12]}, which stays PENDING_ACTIVATION: {error}")


async def run(ctx: RunContext, step: JitConnectStep) -> None:
    """Two phases: the batch leaves the factory (every device's key, certificate and TLS
    context made: not timed, since a real device has them before it powers up), then every
    device powers up at once (or as `pacing` says) and retries until admitted."""
    ca, _ = load_or_create_ca(Path(step.ca), "unused")
    subject_t = {k: Template(v, DEVICE_NAMES) for k, v in step.subject.items()}
    client_id_t = Template(step.client_id, CLIENT_ID_NAMES)
    publish_t = Template(step.publish.payload, DEVICE_NAMES) if step.publish else None
    policy = ReconnectPolicy(base=step.retry_base, cap=step.retry_cap)
    factory, sni = dev.tls_factory(ctx), server_name(ctx.target)
    metrics = ctx.metrics
    prepared: dict[int, tuple[ssl.SSLContext, str]] = {}  # device index -> (TLS, client id)
    ca_id = certificate_id(ca.cert.public_bytes(Encoding.DER))
    statuses = await ca_statuses(ctx, ca_id)
    ledger, journal = ctx.reconcile, ctx.journal_for(ctx.scenario.fleet(step.fleet))

    async def manufacture(d: Device) -> None:
        identity = stored_active(ctx, d, statuses)
        if identity is None:
            identity = await make_identity(ctx, d, ca, {k: t.render(d.names) for k, t in
                                                        subject_t.items()}, step.present_ca)
        assert identity.certificate_id is not None
        d.identity, d.certificate_id = identity, identity.certificate_id
        client_id = client_id_t.render(d.names | {"certificate_id": d.certificate_id})
        if identity.certificate_id in statuses:  # registered already: nothing is made
            ctx.metrics.incr("identities.reused")
            ledger.reuse(prov.CERTIFICATE.name, d.thing_name)
            ledger.reuse(prov.THING.name, client_id)
        else:
            journal.record(prov.IDENTITY_FILES.name, id=identity.certificate_id,
                           identity=prov.identity_base(ctx, d.fleet.name, d.thing_name))
            ledger.create(prov.CERTIFICATE.name, d.thing_name, journal is ctx.journal)
            # the thing JITP's template or JITR's function makes, named as the client id
            # (AWS's template provisioning uses a thing that is there already)
            if await describe(ctx, "DescribeThing", client_id, thingName=client_id):
                ledger.reuse(prov.THING.name, client_id)
            else:
                ledger.create(prov.THING.name, client_id, journal is ctx.journal)
        tls = factory.for_identity(identity)
        if sni and isinstance(tls, DeviceSSLContext):
            tls.server_name = sni
        prepared[d.index] = (tls, client_id)

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), manufacture)
    watcher = RegistryWatcher(ctx, ca_id)

    async def come_online(d: Device) -> None:
        identity, (tls, client_id) = d.identity, prepared[d.index]
        assert identity is not None and d.certificate_id is not None
        start, started_ms = time.perf_counter(), int(time.time() * 1000)
        watcher.started[d.certificate_id] = start
        attempts = 0
        while True:  # as a device does: back-off with full jitter, no registry look-ups
            attempts += 1
            session = DeviceSession(identity, ctx.target, metrics, tls=tls, client_id=client_id,
                                    timeout=step.timeout)
            t0 = time.perf_counter()
            try:
                d.session = await session.__aenter__()
                break
            except DeviceError as e:
                if attempts == 1:
                    metrics.record("jit.first_attempt", (time.perf_counter() - t0) * 1e6)
                if time.perf_counter() - start > step.give_up_after:
                    raise UserError(f"{d.thing_name} was not admitted within "
                                    f"{step.give_up_after:g} s ({attempts} attempts, last: "
                                    f"{e.kind})") from e
            if step.function and attempts >= 2 and d.certificate_id not in watcher.arns:
                await _function_failed(ctx, step.function, d, d.certificate_id, started_ms)
            await asyncio.sleep(policy.delay(attempts - 1))
        admitted_us = (time.perf_counter() - start) * 1e6
        if step.watch_registry and attempts > 1 and d.certificate_id not in watcher.arns:
            # ACTIVE since the watcher's last sweep: the admission proves it, so registration
            # ended by now (and the watcher no longer times this device).
            watcher.started.pop(d.certificate_id, None)
            metrics.record("jit.registration", admitted_us)
        metrics.record("jit.admitted", admitted_us)
        metrics.incr("jit.attempts", attempts)
        metrics.incr(f"jit.devices_by_attempts.{attempts}")
        if step.publish is not None and publish_t is not None:
            await dev.publish(ctx, d, step.publish.topic, publish_t.render(d.names).encode(),
                              step.publish.qos)
            metrics.record("jit.first_publish", (time.perf_counter() - start) * 1e6)

    watching = asyncio.get_running_loop().create_task(watcher.run()) \
        if step.watch_registry else None
    began = time.perf_counter()
    try:
        await for_each_device(ctx, ctx.fleet_devices(step.fleet), come_online, step.pacing)
        metrics.record("jit.fleet_online", (time.perf_counter() - began) * 1e6)
    finally:
        if watching is not None:
            await cancel_and_wait(watching)
    for d in ctx.fleet_devices(step.fleet):  # the registry's ARN, as later steps need it
        assert d.certificate_id is not None
        arn = watcher.arns.get(d.certificate_id)
        if arn is None:
            described = await _status(ctx, d.certificate_id)
            arn = described["certificateArn"] if described else None
        d.certificate_arn = arn


KIND = StepKind(JitConnectStep, run, journals=(prov.IDENTITY_FILES,))
