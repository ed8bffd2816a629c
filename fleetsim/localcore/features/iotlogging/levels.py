"""Which log level applies to a connection (pure).

AWS IoT developer guide, "Configure AWS IoT logging" (resource-specific logging): levels from
least to most verbose are DISABLED, ERROR, WARN, INFO, DEBUG; an entry is written when its own
level is within the level that applies. Resource-specific levels override the default level,
in this order: CLIENT_ID, SOURCE_IP, PRINCIPAL_ID, THING_GROUP. A thing group's level applies
to a client only as the thing it connects as (its client id is the thing's name, or the
certificate's association with the thing is exclusive), and a child group's level overrides its
parents'. `disableAllLogs` turns everything off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DISABLED, ERROR, WARN, INFO, DEBUG = "DISABLED", "ERROR", "WARN", "INFO", "DEBUG"
VERBOSITY = {DISABLED: 0, ERROR: 1, WARN: 2, INFO: 3, DEBUG: 4}

CLIENT_ID, SOURCE_IP, PRINCIPAL_ID, THING_GROUP = (
    "CLIENT_ID", "SOURCE_IP", "PRINCIPAL_ID", "THING_GROUP")
TARGET_TYPES = (THING_GROUP, CLIENT_ID, SOURCE_IP, PRINCIPAL_ID)

Targets = Mapping[tuple[str, str], str]  # (target type, target name) -> level


@dataclass(frozen=True)
class Who:
    """What identifies a connection to the resolution."""

    client_id: str
    source_ip: str
    principal_id: str
    # For the connection's thing: each of its groups with that group's ancestors, nearest
    # first ([group, parent, ..., root]).
    group_chains: Sequence[Sequence[str]] = ()


def writes(applying: str, entry_level: str) -> bool:
    """Whether an entry of `entry_level` is written where `applying` applies."""
    return VERBOSITY[entry_level] <= VERBOSITY[applying] and applying != DISABLED


def group_level(targets: Targets, chains: Iterable[Sequence[str]]) -> str | None:
    """The level set on the nearest configured group of each chain; the most verbose of them
    when the thing is in several groups."""
    found: list[str] = []
    for chain in chains:
        for group in chain:
            level = targets.get((THING_GROUP, group))
            if level is not None:
                found.append(level)
                break
    return max(found, key=VERBOSITY.__getitem__) if found else None


def resolve(default: str, disable_all: bool, targets: Targets, who: Who) -> str:
    if disable_all:
        return DISABLED
    for key in ((CLIENT_ID, who.client_id), (SOURCE_IP, who.source_ip),
                (PRINCIPAL_ID, who.principal_id)):
        level = targets.get(key)
        if level is not None:
            return level
    level = group_level(targets, who.group_chains)
    return default if level is None else level
