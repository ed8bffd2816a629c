"""State shared by the steps of one run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetsim.control.journal import Journal
from fleetsim.device import (
    DeviceIdentity,
    DeviceSession,
    KeyFactory,
    Observer,
    TlsContextFactory,
)
from fleetsim.engine.reconcile import Ledger
from fleetsim.metrics.recorder import Metrics
from fleetsim.scenario.model import Fleet, Scenario
from fleetsim.target import Target

if TYPE_CHECKING:
    from fleetsim.device.behaviours.job_agent import JobAgent
    from fleetsim.device.behaviours.shadow import ShadowReporter
    from fleetsim.engine.preloaded import Preloaded

# What a device's behaviours are handed for each message it receives: (topic, payload).
MessageHandler = Callable[[str, bytes], None]


@dataclass(slots=True)
class Device:
    """In slots, and its behaviours' containers made as they are first needed: a 10,000-device
    run holds 10,000 of these from its start (issue 9: ~170 bytes each less, tracemalloc)."""

    fleet: Fleet
    index: int
    thing_name: str
    certificate_arn: str | None = None
    certificate_id: str | None = None
    identity: DeviceIdentity | None = None  # once it has a certificate
    session: DeviceSession | None = None  # while connected
    failed: str | None = None  # why this device dropped out of the run
    # Behaviours listening to what the device receives (see devices.listen), while connected
    # (None: none yet).
    handlers: list[MessageHandler] | None = None
    # The device's shadow reporters, by shadow name ("" for the classic shadow; None: none).
    shadows: dict[str, ShadowReporter] | None = None
    job_agent: JobAgent | None = None  # the job agent behaviour, while connected

    def shadow(self, name: str) -> ShadowReporter | None:
        """The reporter of shadow `name` ("": the classic shadow), if one runs."""
        return self.shadows.get(name) if self.shadows else None

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
    iot_data: Any
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
    background: dict[str, list[asyncio.Task[Any]]] = field(default_factory=dict)

    s3: Any = None  # bulk registration's files
    lambda_: Any = None  # functions a step deploys (deploy_function)
    logs: Any = None  # CloudWatch Logs (filter_log_events, a function's log group)
    iam: Any = None  # IAM (the logging role)
    # When the run started (epoch seconds): the start of the window its log searches cover.
    started: float = field(default_factory=time.time)
    shards: int = 1  # N of --shard K/N
    # (K, N) in a distributed run (fleetsim run --ray): this process is the K-th of N that
    # split every fleet, and paces at 1/N of every rate (fanout.pacer_for).
    pace_share: tuple[int, int] = (1, 1)
    # The wall-clock time (epoch seconds) the step that runs now starts at on every shard: the
    # shards' pacers count their interleaved schedules from it (None: from the first start;
    # the step's first pass over its devices takes it).
    pace_origin: float | None = None
    # Resources several steps may touch (a shadow), journaled by the first one only.
    journaled: set[tuple[str, ...]] = field(default_factory=set)
    # Jobs this run created (create_job), by job id: the CreateJob request, for wait_job.
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Values earlier steps made known for `${NAME}` placeholders in later steps' files (a
    # deployed function's ARN, a registered CA's id), by NAME.
    values: dict[str, str] = field(default_factory=dict)
    # Persistent identities' bulk check (engine/stored.py), loaded on first use.
    stored: asyncio.Future[Any] | None = None
    # What the run created, reused and found drifted (engine/reconcile.py); `plan` set by
    # `fleetsim run --plan`, when steps only describe.
    reconcile: Ledger = field(default_factory=Ledger)
    # Listings several devices share (engine/describe.py `shared`), by key, made once.
    listings: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    # Stored identities read before the API child forked (engine/preloaded.py): the child's.
    preloaded: Preloaded | None = None

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
