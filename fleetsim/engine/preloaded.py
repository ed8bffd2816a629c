"""Stored identities read by the device process before it forks the API child (issue 9:
start-up re-using persistent identities).

A split run (engine/split.py) runs its API steps, `provision` among them, in a forked child.
Were the child to read the stored identities, each one (its key and certificate PEMs) would
cross the pipe back to the device process, pickled and loaded (~15 us a device, 10,000 at a
10,000-device start-up). Instead the device process reads them before it forks: the child
inherits them (fork, copy-on-write) and takes each one once (`Preloaded.take`, through
`devices.load_identity`); what it hands back for a device that kept its stored identity is
one marker (`Preloaded.kept`), and only an identity it created or replaced crosses the pipe.

Each identity is taken once: a later load of the same device in the child (after `provision`
saved a new identity for it, say) reads the files again. A damaged file is not preloaded: the
step that loads it names the file, as it did. A fleet with no folder (nothing stored yet)
costs no failed open a device.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from fleetsim.device import DeviceIdentity
from fleetsim.device.identity import IdentityStore
from fleetsim.errors import UserError

if TYPE_CHECKING:
    from fleetsim.engine.context import Device


class _Absent(enum.Enum):
    NOT_PRELOADED = enum.auto()


# `Preloaded.take` of a device that was not preloaded (its files are read as ever).
NOT_PRELOADED: Final = _Absent.NOT_PRELOADED


@dataclass
class Preloaded:
    """The stored identity of each device (None: nothing stored), by fleet and thing name."""

    identities: dict[str, dict[str, DeviceIdentity | None]]
    taken: set[tuple[str, str]] = field(default_factory=set)

    def take(self, fleet: str, thing_name: str) -> DeviceIdentity | _Absent | None:
        """The device's preloaded identity the first time it is asked for, else
        NOT_PRELOADED (its files may have changed since: read them)."""
        found = self.identities.get(fleet, {}).get(thing_name, NOT_PRELOADED)
        if found is NOT_PRELOADED or (fleet, thing_name) in self.taken:
            return NOT_PRELOADED
        self.taken.add((fleet, thing_name))
        return found

    def kept(self, device: Device) -> bool:
        """The device holds its preloaded identity, as stored (same object, certificate as
        stored) and has not failed: the parent, which holds the same identity, needs only
        to know that."""
        identity = device.identity
        return (identity is not None and device.failed is None
                and self.identities.get(device.fleet.name, {}).get(device.thing_name)
                is identity
                and device.certificate_arn == identity.certificate_arn
                and device.certificate_id == identity.certificate_id)

    def restore(self, device: Device) -> None:
        """Give `device` its preloaded identity, as `kept` said the child's device held it."""
        identity = self.identities[device.fleet.name][device.thing_name]
        assert identity is not None
        device.identity, device.failed = identity, None
        device.certificate_arn = identity.certificate_arn
        device.certificate_id = identity.certificate_id


def preload(identities_dir: Path, devices: dict[str, list[Device]]) -> Preloaded:
    """Every device's stored identity in `identities_dir` (the run's: `<state>/identities/
    <scenario>`), read as `IdentityStore.load_if_stored` reads it."""
    found: dict[str, dict[str, DeviceIdentity | None]] = {}
    for fleet, members in devices.items():
        store = IdentityStore(identities_dir, fleet)
        if not os.path.isdir(store.directory):  # nothing stored for this fleet
            found[fleet] = dict.fromkeys((d.thing_name for d in members), None)
            continue
        loaded: dict[str, DeviceIdentity | None] = {}
        for d in members:
            try:
                loaded[d.thing_name] = store.load_if_stored(d.thing_name)
            except UserError:
                continue  # damaged: not preloaded; the step that loads it names the file
        found[fleet] = loaded
    return Preloaded(found)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off while the start-up makes objects that all live on (10,000
    devices, their identities: no cycle among them to find), back on after (its young
    collections cost ~0.03 s of a 10,000-device start-up)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
