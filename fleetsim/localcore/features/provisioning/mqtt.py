"""Fleet provisioning by claim over MQTT ("Device provisioning MQTT API"):

- `$aws/certificates/create/<format>`: CreateKeysAndCertificate, accepted with
  `certificateId`, `certificatePem`, `privateKey`, `certificateOwnershipToken`;
- `$aws/certificates/create-from-csr/<format>` (`certificateSigningRequest`):
  CreateCertificateFromCsr, accepted with `certificateId`, `certificatePem`,
  `certificateOwnershipToken`;
- `$aws/provisioning-templates/<templateName>/provision/<format>`
  (`certificateOwnershipToken`, `parameters`): RegisterThing, accepted with
  `deviceConfiguration` and `thingName`.

`<format>` is `json` or `cbor` (the replies use the request's). Replies go to `<request>/accepted`
or `<request>/rejected` (`statusCode`, `errorCode`, `errorMessage`), through the same
connection only, and only if it subscribed to them first (`subscribed_requester`). The claim
certificate's policy decides whether the client may publish, subscribe and receive these topics
(the broker checks it, as for any topic).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import cbor2

from fleetsim.localcore.broker.router import Delivery, Handler, Reply, Request, Router
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.provisioning.service import (
    ProvisioningRejected,
    ProvisioningService,
)
from fleetsim.localcore.scope import Scope
from fleetsim.pki import private_key_pem

FORMATS = ("json", "cbor")


def decode(payload: bytes, fmt: str) -> dict[str, Any]:
    """The request object; ProvisioningRejected if the payload is not one."""
    try:
        doc = cbor2.loads(payload) if fmt == "cbor" else json.loads(payload or b"{}")
    except Exception:  # any decoding failure: the client's payload is malformed
        raise ProvisioningRejected(400, "InvalidPayload",
                                   f"The request payload is not valid {fmt.upper()}.") from None
    if not isinstance(doc, dict):
        raise ProvisioningRejected(400, "InvalidPayload",
                                   f"The request payload must be a {fmt.upper()} object.")
    return doc


def encode(doc: dict[str, Any], fmt: str) -> bytes:
    return cbor2.dumps(doc) if fmt == "cbor" else json.dumps(doc).encode()


def _string(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ProvisioningRejected(400, "InvalidPayload", f"{key} is missing or not a string.")
    return value


def _answering(answer: Callable[[dict[str, Any], Request], Awaitable[dict[str, Any]]]
               ) -> Handler:
    """A handler that decodes the request in its format, publishes what `answer` returns on
    `<request>/accepted`, or its refusal on `<request>/rejected`."""

    async def handle(request: Request, reply: Reply) -> None:
        fmt = request.params["format"]
        if fmt not in FORMATS:
            return
        try:
            doc = await answer(decode(request.payload, fmt), request)
        except (ProvisioningRejected, AwsError) as e:
            _reject(reply, request.topic, fmt, e)
            return
        reply.publish(f"{request.topic}/accepted", encode(doc, fmt))

    return handle


def register(router: Router, service: ProvisioningService, scope: Scope) -> None:
    """Answer the fleet provisioning topics for the broker's account and region."""

    async def create(doc: dict[str, Any], request: Request) -> dict[str, Any]:
        cert, key, token = await service.create_keys_and_certificate(scope)
        return {"certificateId": cert.id, "certificatePem": cert.pem,
                "privateKey": private_key_pem(key).decode(),
                "certificateOwnershipToken": token}

    async def create_from_csr(doc: dict[str, Any], request: Request) -> dict[str, Any]:
        csr = _string(doc, "certificateSigningRequest")
        cert, token = service.create_certificate_from_csr(scope, csr)
        return {"certificateId": cert.id, "certificatePem": cert.pem,
                "certificateOwnershipToken": token}

    async def provision(doc: dict[str, Any], request: Request) -> dict[str, Any]:
        token = _string(doc, "certificateOwnershipToken")
        parameters = doc.get("parameters") or {}
        if not isinstance(parameters, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()):
            raise ProvisioningRejected(400, "InvalidPayload",
                                       "parameters must be an object of strings.")
        result = service.register_thing(scope, request.params["templateName"], token,
                                        parameters)
        out: dict[str, Any] = {"deviceConfiguration": result.device_configuration}
        if result.thing_name is not None:
            out["thingName"] = result.thing_name
        return out

    delivery: Delivery = "subscribed_requester"
    router.register("$aws/certificates/create/{format}", _answering(create), delivery)
    router.register("$aws/certificates/create-from-csr/{format}", _answering(create_from_csr),
                    delivery)
    router.register("$aws/provisioning-templates/{templateName}/provision/{format}",
                    _answering(provision), delivery)


def _reject(reply: Reply, topic: str, fmt: str, error: ProvisioningRejected | AwsError) -> None:
    if isinstance(error, AwsError):
        error = ProvisioningRejected(error.status or 400, error.code.removesuffix("Exception"),
                                     error.message)
    reply.publish(f"{topic}/rejected", encode(error.payload(), fmt))
