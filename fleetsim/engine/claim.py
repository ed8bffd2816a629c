"""The claim certificate fleet provisioning shares among a fleet's devices: made by the run
(create-keys-and-certificate, the claim policy attached; both journaled) or read from files."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from fleetsim.device import DeviceIdentity
from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.errors import UserError
from fleetsim.pki.keys import KeyType, load_private_key

CLAIM = "claim"  # the claim identity's name (its client id is each device's)


async def made(ctx: RunContext, policy: str) -> DeviceIdentity:
    out = await api_call(ctx, "CreateKeysAndCertificate", CLAIM, setAsActive=True)
    ctx.journal.record(prov.CERTIFICATE.name, id=out["certificateId"],
                       arn=out["certificateArn"])
    await api_call(ctx, "AttachPolicy", CLAIM, policyName=policy, target=out["certificateArn"])
    ctx.journal.record(prov.POLICY_ATTACHMENT.name, policy=policy, target=out["certificateArn"])
    return DeviceIdentity(CLAIM, 0, CLAIM, "rsa-2048", out["keyPair"]["PrivateKey"].encode()
                          ).with_certificate(out["certificatePem"], out["certificateArn"])


def from_files(certificate: Path, key: Path) -> DeviceIdentity:
    try:
        key_pem = key.read_bytes()
        key_type: KeyType = "ec-p256" if isinstance(load_private_key(key_pem),
                                           ec.EllipticCurvePrivateKey) else "rsa-2048"
        return DeviceIdentity(CLAIM, 0, CLAIM, key_type, key_pem
                              ).with_certificate(certificate.read_bytes())
    except (OSError, ValueError) as e:
        raise UserError(f"the claim certificate {certificate} and key {key} cannot be used: "
                        f"{e}") from e
