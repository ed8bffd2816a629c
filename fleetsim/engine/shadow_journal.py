"""A shadow in the run journal: on AWS a shadow outlives its thing (deleting the thing does
not delete it), so what writes a shadow journals it, and clean-up deletes it before the thing."""

from __future__ import annotations

from typing import Any

from fleetsim.control.cleanup import JournalKind, Phase


async def _delete_shadow(clients: Any, d: dict[str, Any]) -> None:
    params = {"shadowName": d["shadow"]} if d.get("shadow") else {}
    await clients.iot_data.delete_thing_shadow(thingName=d["thing"], **params)


SHADOW = JournalKind("shadow", Phase.DETACH, _delete_shadow)
