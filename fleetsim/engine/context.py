"""State shared by the steps of one run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsim.control.journal import Journal
from fleetsim.device import (
    DeviceIdentity,
    DeviceSession,
    KeyFactory,
    Observer,
    TlsContextFactory,
)
from fleetsim.metrics.recorder import Metrics
from fleetsim.scenario.model import Fleet, Scenario
from fleetsim.target import Target


@dataclass
class Device:
    fleet: Fleet
    index: int
    thing_name: str
    certificate_arn: str | None = None
    certificate_id: str | None = None
    identity: DeviceIdentity | None = None  # once it has a certificate
    session: DeviceSession | None = None  # while connected
    failed: str | None = None  # why this device dropped out of the run

    @property
    def names(self) -> dict[str, Any]:
        """Template variables for this device."""
        return {"fleet": self.fleet.name, "prefix": self.fleet.prefix, "index": self.index,
                "thing_name": self.thing_name, "client_id": self.thing_name}


@dataclass
class RunContext:
    run_id: str
    scenario: Scenario
    target: Target
    iot: Any
    sts: Any
    journal: Journal  # what the run created, removed at its end
    persistent_journal: Journal  # what persistent fleets created, removed by `fleetsim cleanup`
    metrics: Metrics
    identities_dir: Path
    concurrency: int = 64
    devices: dict[str, list[Device]] = field(default_factory=dict)
    observer: Observer | None = None
    tls: TlsContextFactory | None = None  # made on first connect
    keys: KeyFactory = field(default_factory=KeyFactory)
    # Behaviours running in the background, by fleet (stopped at the fleet's disconnect).
    background: dict[str, list[asyncio.Task[None]]] = field(default_factory=dict)

    shards: int = 1  # N of --shard K/N

    def journal_for(self, fleet: Fleet | None, shared: bool = False) -> Journal:
        """Where a resource is written down: resources of persistent fleets, and in a sharded
        run resources all shards share (one policy for the fleet), outlive the run."""
        if fleet is not None and fleet.identities == "persistent":
            return self.persistent_journal
        if shared and self.shards > 1:
            return self.persistent_journal
        return self.journal

    def fleet_devices(self, fleet: str) -> list[Device]:
        """Devices of a fleet still in the run (not dropped out by an earlier failure)."""
        return [d for d in self.devices[fleet] if d.failed is None]
