"""The registry of local core, kept in SQLite: things, thing types, thing groups, certificates,
CA certificates, policies (with versions), attachments and the event configuration.

One connection, used from the event loop only. Every mutating call commits before it returns
(WAL, synchronous=NORMAL: a process killed with SIGKILL loses nothing that was acknowledged).
The store holds no AWS wire knowledge: the API layer checks preconditions and maps results to
response shapes; the store keeps data consistent and answers the broker (`Authority`).

`Store` is composed of one mixin per resource family over `StoreBase` (connection,
transactions, epoch); the records and `certificate_record` are re-exported from here.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fleetsim.localcore.store.authority import AuthorityMixin
from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.ca_certificates import CaCertificatesMixin
from fleetsim.localcore.store.certificates import CertificatesMixin, certificate_record
from fleetsim.localcore.store.events import EventsMixin
from fleetsim.localcore.store.policies import PoliciesMixin
from fleetsim.localcore.store.records import (
    EVENT_TYPES,
    CaCertificateRecord,
    CertificateRecord,
    EventConfig,
    PolicyRecord,
    PolicyVersionRecord,
    ThingGroupRecord,
    ThingRecord,
    ThingTypeRecord,
)
from fleetsim.localcore.store.schema import SCHEMA_VERSION, connect
from fleetsim.localcore.store.thing_groups import ThingGroupsMixin
from fleetsim.localcore.store.thing_principals import ThingPrincipalsMixin
from fleetsim.localcore.store.thing_types import ThingTypesMixin
from fleetsim.localcore.store.things import ThingsMixin

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "CaCertificateRecord",
    "CertificateRecord",
    "EventConfig",
    "PolicyRecord",
    "PolicyVersionRecord",
    "Store",
    "ThingGroupRecord",
    "ThingRecord",
    "ThingTypeRecord",
    "certificate_record",
]


class Store(AuthorityMixin, ThingsMixin, ThingPrincipalsMixin, ThingTypesMixin,
            ThingGroupsMixin, CertificatesMixin, CaCertificatesMixin, PoliciesMixin, EventsMixin,
            StoreBase):
    """The registry. Implements `fleetsim.localcore.principal.Authority` for the broker."""

    def __init__(self, db_path: Path, account_id: str, region: str):
        self.account_id = account_id
        self.region = region
        self._arn_prefix = f"arn:aws:iot:{region}:{account_id}:"
        self._db = connect(db_path)
        self._depth = 0
        self._epoch = 1
        self._policy_cache = {}
        with self.transaction():
            self._meta_default("schema_version", str(SCHEMA_VERSION))
            self._meta_default("registration_code", secrets.token_hex(32))
        self._event_config = self._load_event_config()
