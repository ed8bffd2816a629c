"""What a run created that is still there after its clean-up, found by listing each kind of
resource and looking for the names (and ids) the run's journal holds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleetsim.control.clients import AwsClients
from fleetsim.control.journal import Entry, settle

# journal kind -> (client, paginated list operation, result key, item field, journal field)
_LISTED: dict[str, tuple[str, str, str, str, str]] = {
    "thing": ("iot", "list_things", "things", "thingName", "name"),
    "certificate": ("iot", "list_certificates", "certificates", "certificateId", "id"),
    "policy": ("iot", "list_policies", "policies", "policyName", "name"),
    "thing_group": ("iot", "list_thing_groups", "thingGroups", "groupName", "name"),
    "ca_certificate": ("iot", "list_ca_certificates", "certificates", "certificateId", "id"),
    "topic_rule": ("iot", "list_topic_rules", "rules", "ruleName", "name"),
    "provisioning_template": ("iot", "list_provisioning_templates", "templates",
                              "templateName", "name"),
    "function": ("lambda_", "list_functions", "Functions", "FunctionName", "name"),
    "iam_role": ("iam", "list_roles", "Roles", "RoleName", "name"),
    "package": ("iot", "list_packages", "packageSummaries", "packageName", "name"),
}


async def _listed(client: Any, op: str, key: str, field: str) -> set[str]:
    names: set[str] = set()
    async for page in client.get_paginator(op).paginate():
        names.update(str(item[field]) for item in page.get(key, []))
    return names


async def leftovers(clients: AwsClients, entries: Iterable[Entry],
                    thing_names: Iterable[str] = ()) -> list[str]:
    """`kind name` of each resource the journal (or `thing_names`: the fleets' things) names
    that still exists."""
    wanted: dict[str, set[str]] = {kind: set() for kind in _LISTED}
    wanted["thing"].update(thing_names)
    buckets: set[str] = set()
    for entry in settle(list(entries)):
        if entry.kind in _LISTED:
            value = entry.data.get(_LISTED[entry.kind][4])
            if value:
                wanted[entry.kind].add(str(value))
        elif entry.kind == "s3_bucket":
            buckets.add(str(entry.data["bucket"]))
    left = []
    for kind, (client_name, op, key, field, _) in _LISTED.items():
        if wanted[kind]:
            there = await _listed(getattr(clients, client_name), op, key, field)
            left += [f"{kind} {name}" for name in sorted(wanted[kind] & there)]
    if buckets:
        listed = await clients.s3.list_buckets()
        there = {b["Name"] for b in listed.get("Buckets", [])}
        left += [f"s3_bucket {name}" for name in sorted(buckets & there)]
    return left
