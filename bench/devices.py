"""Device identities for broker benchmarks, registered through the API as a fleet would be:
EC P-256 key and CSR made here, create-certificate-from-csr (ACTIVE), attach an allow-all
policy. Files are written under the benchmark's temp directory (keys 0600)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench.api_client import ApiClient, RateResult, run_closed_loop
from bench.system import cpu_seconds
from fleetsim.localcore.policy_document import ALLOW_ALL_DOCUMENT
from fleetsim.pki import build_csr, generate_key, private_key_pem, write_private

POLICY_NAME = "bench-allow-all"


@dataclass(frozen=True)
class DeviceFiles:
    """What a client process needs to connect as one device (picklable)."""

    name: str
    cert_path: str
    key_path: str


@dataclass
class Provisioned:
    devices: list[DeviceFiles]
    create_cert: RateResult  # create-certificate-from-csr calls (EC P-256 CSRs made beforehand)
    attach: RateResult
    create_cert_server_cpu_s: float | None = None


async def provision(api: ApiClient, count: int, directory: Path, prefix: str = "bench-dev",
                    concurrency: int = 16, server_pid: int | None = None) -> Provisioned:
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    keys = [generate_key("ec-p256") for _ in names]
    csrs = [build_csr(key, name).decode() for key, name in zip(keys, names, strict=True)]
    arns: dict[int, str] = {}
    devices: dict[int, DeviceFiles] = {}

    def create(i: int) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            reply = await api.create_certificate_from_csr(csrs[i])
            arns[i] = reply["certificateArn"]
            cert_path, key_path = directory / f"{names[i]}.crt", directory / f"{names[i]}.key"
            cert_path.write_text(reply["certificatePem"])
            write_private(key_path, private_key_pem(keys[i]))
            devices[i] = DeviceFiles(names[i], str(cert_path), str(key_path))
        return call

    def attach(i: int) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            await api.attach_policy(POLICY_NAME, arns[i])
        return call

    await api.create_policy(POLICY_NAME, ALLOW_ALL_DOCUMENT)
    cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
    created = await run_closed_loop((create(i) for i in range(count)), concurrency, 1e9)
    server_cpu = cpu_seconds(server_pid) - cpu0 if server_pid else None
    attached = await run_closed_loop((attach(i) for i in range(count)), concurrency, 1e9)
    return Provisioned([devices[i] for i in range(count)], created, attached, server_cpu)
