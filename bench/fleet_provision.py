"""Fleet bench set-up, outside every timed section: N device identities issued by local core's
own CA and registered through its certificates and policies services before it starts
(seconds for thousands, where create-keys-and-certificate would generate an RSA key per
device), and local core started
in its own process on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.system import taskset_prefix
from fleetsim.device import DeviceIdentity, IdentityStore
from fleetsim.localcore.arguments import INFO_FILE
from fleetsim.localcore.core import LocalCore, LocalCoreConfig
from fleetsim.localcore.launcher import RunningLocalCore, spawn_local_core
from fleetsim.localcore.policy_document import ALLOW_ALL
from fleetsim.localcore.scope import Scope
from fleetsim.pki import generate_key, private_key_pem

FLEET = "bench"
OBSERVER_FLEET = "observer"
POLICY = "bench-allow-all"


def provision(state_dir: Path, identities_dir: Path, n: int, region: str = "us-east-1") -> None:
    """`n` devices `bench-<i>` plus one observer, each with an EC P-256 key and an ACTIVE
    certificate carrying an allow-all policy; identities saved as the engine saves them."""
    asyncio.run(_provision(state_dir, identities_dir, n, region))


async def _provision(state_dir: Path, identities_dir: Path, n: int, region: str) -> None:
    core = LocalCore(LocalCoreConfig(state_dir=state_dir, region=region))
    scope = Scope(core.config.account_id, region)
    certificates, policies = core.services.get("certificates"), core.services.get("policies")
    devices = IdentityStore(identities_dir, FLEET)
    observers = IdentityStore(identities_dir, OBSERVER_FLEET)
    devices.directory.mkdir(parents=True, exist_ok=True)
    observers.directory.mkdir(parents=True, exist_ok=True)
    try:
        with core.db.transaction():
            policies.create_policy(scope, POLICY, ALLOW_ALL)
            for fleet, index, name, target in (
                    [(OBSERVER_FLEET, 0, "bench-observer", observers)]
                    + [(FLEET, i, f"bench-{i}", devices) for i in range(n)]):
                key = generate_key("ec-p256")
                rec = certificates.issue_device_certificate(scope, key.public_key(), name)
                arn = scope.arn("cert", rec.id)
                policies.attach_policy(scope, POLICY, arn)
                target.save(DeviceIdentity(
                    fleet, index, name, "ec-p256", private_key_pem(key), rec.pem.encode(),
                    rec.id, arn))
    finally:
        await core.bus.close()
        core.db.close()


def start_core(state_dir: Path, log: Path, timeout: float = 30.0,
               cpu: int | None = None) -> RunningLocalCore:
    """Local core on ephemeral ports; on CPU `cpu` alone if given (and taskset is here)."""
    return spawn_local_core(state_dir, log, api_port=0, mqtt_port=0, timeout=timeout,
                            prefix=taskset_prefix(cpu))


@contextmanager
def provisioned_core(n: int, prefix: str,
                     cpu: int | None = None) -> Iterator[tuple[Path, Path, Path]]:
    """A temporary work directory with `n` devices provisioned and local core running on them
    (on CPU `cpu` if given): (the work directory, local core's info file, the identities
    directory); local core is stopped and the directory removed on exit."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        state, ids = work / "state", work / "identities"
        provision(state, ids, n)
        core = start_core(state, work / "localcore.log", cpu=cpu)
        try:
            yield work, state / INFO_FILE, ids
        finally:
            core.stop()
