"""Fleet bench set-up, outside every timed section: N device identities issued by local core's
own CA and registered straight into its store before it starts (seconds for thousands, where
create-keys-and-certificate would generate an RSA key per device), and local core started
in its own process on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.device import DeviceIdentity, IdentityStore
from fleetsim.localcore.ca import LocalCA
from fleetsim.localcore.core import DEFAULT_ACCOUNT_ID
from fleetsim.localcore.launcher import RunningLocalCore, spawn_local_core
from fleetsim.localcore.store import Store, certificate_record
from fleetsim.pki import certificate_id, certificate_pem, generate_key, private_key_pem

FLEET = "bench"
OBSERVER_FLEET = "observer"
POLICY = "bench-allow-all"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})


def provision(state_dir: Path, identities_dir: Path, n: int, region: str = "us-east-1") -> None:
    """`n` devices `bench-<i>` plus one observer, each with an EC P-256 key and an ACTIVE
    certificate carrying an allow-all policy; identities saved as the engine saves them."""
    ca = LocalCA.load_or_create(state_dir)
    store = Store(state_dir / "state.db", DEFAULT_ACCOUNT_ID, region)
    devices = IdentityStore(identities_dir, FLEET)
    observers = IdentityStore(identities_dir, OBSERVER_FLEET)
    devices.directory.mkdir(parents=True, exist_ok=True)
    observers.directory.mkdir(parents=True, exist_ok=True)
    try:
        with store.transaction():
            store.create_policy(POLICY, ALLOW_ALL)
            for fleet, index, name, target in (
                    [(OBSERVER_FLEET, 0, "bench-observer", observers)]
                    + [(FLEET, i, f"bench-{i}", devices) for i in range(n)]):
                key = generate_key("ec-p256")
                cert = ca.authority.issue_device(key.public_key(), name)
                rec = store.insert_certificate(certificate_record(cert, "ACTIVE"))
                arn = store.arn("cert", rec.id)
                store.attach_policy(POLICY, arn)
                pem = certificate_pem(cert)
                target.save(DeviceIdentity(
                    fleet, index, name, "ec-p256", private_key_pem(key), pem,
                    certificate_id(cert.public_bytes(Encoding.DER)), arn))
    finally:
        store.close()


def start_core(state_dir: Path, log: Path, timeout: float = 30.0) -> RunningLocalCore:
    return spawn_local_core(state_dir, log, api_port=0, mqtt_port=0, timeout=timeout)
