"""Fleet provisioning by claim, the device's side ("Device provisioning MQTT API" in the AWS
IoT developer guide): a device holding the shared claim certificate asks for its own
certificate and registers its thing, over MQTT.

    claim = ClaimClient(session, metrics)
    session.on_message(lambda m: claim.on_message(str(m.topic), m.payload))
    created = await claim.create_certificate(csr_pem)   # or None: AWS makes the key
    registered = await claim.register_thing("my-template", created.token, {"Serial": "7"})

Topics: `$aws/certificates/create/json` (CreateKeysAndCertificate),
`$aws/certificates/create-from-csr/json` (CreateCertificateFromCsr) and
`$aws/provisioning-templates/<template>/provision/json` (RegisterThing, with the
`certificateOwnershipToken` of the certificate created), each answered on `/accepted` or
`/rejected` (`{statusCode, errorCode, errorMessage}`). AWS answers only a client subscribed to
both before it asks (the replies carry private keys), so `start` subscribes first.

Measured (microseconds): `claim.certificate` (request to accepted certificate) and
`claim.register` (RegisterThing to its accepted reply); a rejection counts as an error of
kind `claim_<errorCode>`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol

from fleetsim.device.errors import DeviceError
from fleetsim.metrics import Metrics

CERTIFICATE_OP = "claim.certificate"
REGISTER_OP = "claim.register"
CREATE = "$aws/certificates/create/json"
CREATE_FROM_CSR = "$aws/certificates/create-from-csr/json"


def provision_topic(template: str) -> str:
    return f"$aws/provisioning-templates/{template}/provision/json"


class ClaimRejected(DeviceError):
    """The fleet provisioning service answered on `/rejected`."""

    def __init__(self, topic: str, reply: dict[str, Any]):
        code = str(reply.get("errorCode", "Rejected"))
        super().__init__(f"claim_{code}", f"{topic}: {reply.get('statusCode')} {code}: "
                                          f"{reply.get('errorMessage', '')}")
        self.reply = reply


class ClaimSession(Protocol):
    async def subscribe(self, topic_filter: str, qos: int = 0) -> int: ...

    async def publish(self, topic: str, payload: bytes | str | None = None, qos: int = 0,
                      retain: bool = False) -> None: ...


@dataclass(frozen=True)
class CreatedCertificate:
    certificate_id: str
    certificate_pem: str
    private_key_pem: str | None  # None when the device sent its own CSR
    token: str  # certificateOwnershipToken: RegisterThing's proof of possession


@dataclass(frozen=True)
class Registered:
    thing_name: str
    device_configuration: dict[str, Any]


class ClaimClient:
    """One request at a time per topic (a device provisions itself once)."""

    def __init__(self, session: ClaimSession, metrics: Metrics, timeout: float = 10.0):
        self.session, self.metrics, self.timeout = session, metrics, timeout
        self._pending: dict[str, asyncio.Future[tuple[bool, dict[str, Any]]]] = {}

    async def _subscribe(self, request_topic: str) -> None:
        for outcome in ("accepted", "rejected"):
            await self.session.subscribe(f"{request_topic}/{outcome}", qos=1)

    def on_message(self, topic: str, payload: bytes) -> None:
        base, _, outcome = topic.rpartition("/")
        future = self._pending.get(base)
        if future is None or future.done() or outcome not in ("accepted", "rejected"):
            return
        try:
            reply = json.loads(payload)
        except ValueError:
            reply = {"errorCode": "InvalidReply", "errorMessage": payload[:200].decode(
                errors="replace")}
        future.set_result((outcome == "accepted", reply))

    async def _request(self, topic: str, body: dict[str, Any], op: str) -> dict[str, Any]:
        await self._subscribe(topic)
        future = self._pending[topic] = asyncio.get_running_loop().create_future()
        try:
            async with self.metrics.time(op):
                await self.session.publish(topic, json.dumps(body).encode(), qos=1)
                try:
                    accepted, reply = await asyncio.wait_for(future, self.timeout)
                except TimeoutError as e:
                    raise DeviceError("claim_timeout", f"no reply on {topic}/accepted or "
                                      f"/rejected within {self.timeout:g} s") from e
                if not accepted:
                    raise ClaimRejected(topic, reply)
                return reply
        finally:
            self._pending.pop(topic, None)

    async def create_certificate(self, csr_pem: str | None) -> CreatedCertificate:
        """CreateCertificateFromCsr with the device's CSR, or CreateKeysAndCertificate."""
        if csr_pem is None:
            reply = await self._request(CREATE, {}, CERTIFICATE_OP)
        else:
            reply = await self._request(CREATE_FROM_CSR,
                                        {"certificateSigningRequest": csr_pem}, CERTIFICATE_OP)
        return CreatedCertificate(reply["certificateId"], reply["certificatePem"],
                                  reply.get("privateKey"), reply["certificateOwnershipToken"])

    async def register_thing(self, template: str, token: str,
                             parameters: dict[str, str]) -> Registered:
        reply = await self._request(provision_topic(template), {
            "certificateOwnershipToken": token, "parameters": parameters}, REGISTER_OP)
        return Registered(str(reply["thingName"]), dict(reply.get("deviceConfiguration") or {}))
