"""AWS Lambda on local core's API port (SigV4 service `lambda`): functions with Python
runtimes, their resource policies, and invocations run by local core itself in warm worker
processes, writing to `/aws/lambda/<name>` through the logs feature. The folder is `functions`
because `lambda` is a Python keyword; the feature's NAME is `lambda`."""

from __future__ import annotations

import contextlib

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.functions import api
from fleetsim.localcore.features.functions.code import CodeStore
from fleetsim.localcore.features.functions.logs import LogSink
from fleetsim.localcore.features.functions.service import LambdaService
from fleetsim.localcore.features.functions.store import FunctionStore

NAME = "lambda"
# The credentials functions get when local core checks none (it accepts any).
ANY_CREDENTIALS = ("AKIALOCALCORELAMBDA0", "local-core-accepts-any-secret")


def install(ctx: FeatureContext) -> None:
    def credentials() -> tuple[str, str]:
        with contextlib.suppress(StopIteration):
            return next(iter(ctx.config.credentials.items()))
        return ANY_CREDENTIALS

    service = LambdaService(FunctionStore(ctx.db), CodeStore(ctx.config.state_dir / "lambda"),
                            LogSink(lambda: ctx.services.get("logs")), ctx.services,
                            credentials, ctx.api_url)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
