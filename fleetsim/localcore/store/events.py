"""The event configuration (UpdateEventConfigurations), kept in `meta` and cached in memory."""

from __future__ import annotations

import json
import time

from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.records import EVENT_TYPES, EventConfig


class EventsMixin(StoreBase):
    _event_config: EventConfig

    def _load_event_config(self) -> EventConfig:
        raw = self._meta("event_configurations")
        if raw is None:
            return EventConfig()
        data = json.loads(raw)
        enabled = dict.fromkeys(EVENT_TYPES, False) | data["enabled"]
        return EventConfig(enabled, data["created"], data["last_modified"])

    @property
    def event_config(self) -> EventConfig:
        return self._event_config

    def event_enabled(self, event_type: str) -> bool:
        return self._event_config.enabled.get(event_type, False)

    def update_event_config(self, changes: dict[str, bool]) -> EventConfig:
        now = time.time()
        cfg = self._event_config
        enabled = cfg.enabled | changes
        new = EventConfig(enabled, cfg.created or now, now)
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('event_configurations', ?)",
                       (json.dumps({"enabled": enabled, "created": new.created,
                                    "last_modified": now}),))
        self._event_config = new
        return new
