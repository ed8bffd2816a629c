"""What every handler of local core's API is given: the core and its registry."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetsim.localcore.core import LocalCore
    from fleetsim.localcore.events import EventPublisher
    from fleetsim.localcore.store import Store

# AWS lets a deprecated thing type be deleted only after five minutes.
THING_TYPE_DELETE_DELAY_ENV = "FLEETSIM_THING_TYPE_DELETE_DELAY_S"


@dataclass
class ApiContext:
    core: LocalCore
    store: Store = field(init=False)
    events: EventPublisher = field(init=False)
    account_id: str = field(init=False)
    region: str = field(init=False)
    thing_type_delete_delay_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.core.store
        self.events = self.core.events
        self.account_id = self.core.config.account_id
        self.region = self.core.config.region
        self.thing_type_delete_delay_s = float(os.environ.get(THING_TYPE_DELETE_DELAY_ENV,
                                                              "300"))

    def arn(self, kind: str, name: str) -> str:
        return self.store.arn(kind, name)
