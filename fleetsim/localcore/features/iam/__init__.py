"""IAM roles (query protocol, global) as far as the workshop's labs use them: the logging
role and the roles the workshop's stack creates."""

from __future__ import annotations

import time

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.iam import api
from fleetsim.localcore.features.iam.service import IamService

NAME = "iam"


def install(ctx: FeatureContext) -> None:
    service = IamService(ctx.db, ctx.config.account_id, time.time)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
