"""aioboto3 clients for a target: local core through endpoint_url, AWS through the standard
credential chain. Nothing else differs between the two."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fleetsim.control.lazy import LazyClient
from fleetsim.target import Target

# Local core accepts any credentials; fixed ones mean a local run needs no AWS account.
LOCAL_CREDENTIALS = {"aws_access_key_id": "fleetsim", "aws_secret_access_key": "fleetsim"}


@dataclass
class AwsClients:
    iot: Any
    sts: Any
    iot_data: Any  # device shadows (and the rest of AWS IoT's data plane API)
    s3: Any = None  # bulk registration's input files and reports
    lambda_: Any = None  # functions that topic rules invoke (JITR)
    logs: Any = None  # CloudWatch Logs: what functions and AWS IoT logging wrote
    iam: Any = None  # roles AWS IoT assumes (the logging role)


@asynccontextmanager
async def aws_clients(target: Target, max_connections: int = 64) -> AsyncIterator[AwsClients]:
    # Imported here: ~45 MB that a device-only process never needs (engine/split.py).
    import aioboto3
    from botocore.config import Config

    session = aioboto3.Session(profile_name=target.profile if target.kind == "aws" else None)
    config = Config(retries={"mode": "adaptive", "max_attempts": 6},
                    max_pool_connections=max_connections)
    extra: dict[str, Any] = {"config": config, **target.boto3_kwargs()}
    if target.kind == "local":
        extra.update(LOCAL_CREDENTIALS)
    async with AsyncExitStack() as stack:

        def lazy(service: str, **kwargs: Any) -> LazyClient:
            return LazyClient(service, lambda: stack.enter_async_context(
                session.client(service, **kwargs)))

        # The iot client is made at once (its paginators and `meta` are used); the others
        # at their first call, and closed with the stack.
        iot = await stack.enter_async_context(session.client("iot", **extra))
        data_extra = {**extra, **target.data_boto3_kwargs()}
        # Local core serves S3 on its one API endpoint, addressed path-style (bucket in the path).
        s3_config = config.merge(Config(s3={"addressing_style": "path"})) \
            if target.kind == "local" else config
        yield AwsClients(iot, lazy("sts", **extra), lazy("iot-data", **data_extra),
                         lazy("s3", **{**extra, "config": s3_config}), lazy("lambda", **extra),
                         lazy("logs", **extra), lazy("iam", **extra))
