"""Local core's features, installed in this order at start (one line each). A feature is one
folder here; see `context.py` for what it implements and `docs/architecture.md` for how to
add one."""

from __future__ import annotations

from fleetsim.localcore.features import (
    bulk,
    certificates,
    endpoint,
    events,
    functions,
    iam,
    indexing,
    iotlogging,
    jit,
    jobs,
    logs,
    packages,
    policies,
    provisioning,
    registry,
    rules,
    s3,
    shadows,
)
from fleetsim.localcore.features.context import Feature

FEATURES: tuple[Feature, ...] = (
    registry,
    certificates,
    policies,
    events,
    endpoint,
    shadows,
    provisioning,
    s3,
    bulk,
    jit,
    iam,
    iotlogging,
    logs,
    indexing,
    functions,
    rules,
    jobs,
    packages,
)
