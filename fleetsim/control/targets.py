"""Resolving a target: AWS IoT's MQTT endpoint comes from describe-endpoint."""

from __future__ import annotations

from typing import Any

from fleetsim.control.errors import api_error
from fleetsim.errors import UserError
from fleetsim.target import Target


async def aws_target(region: str | None, profile: str | None, port: int = 8883) -> Target:
    """Credentials and region from the standard AWS chain (profile, environment); the broker
    from describe-endpoint with iot:Data-ATS; server CA Amazon Root CA 1 (certifi)."""
    import aioboto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    session = aioboto3.Session(profile_name=profile, region_name=region)
    try:
        async with session.client("iot") as iot:
            out = await iot.describe_endpoint(endpointType="iot:Data-ATS")
            resolved_region = iot.meta.region_name
    except NoRegionError as e:
        raise UserError("no AWS region: set target.region in the scenario, AWS_REGION, or a "
                        "region in your AWS profile") from e
    except NoCredentialsError as e:
        raise UserError("no AWS credentials found: configure a profile (target.profile) or "
                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from e
    except (ClientError, BotoCoreError) as e:
        raise api_error("DescribeEndpoint", e) from e
    return Target.aws(resolved_region, out["endpointAddress"], port=port, profile=profile)


def describe_target(target: Target) -> dict[str, Any]:
    """What a journal needs to find the target again for clean-up."""
    return {"kind": target.kind, "region": target.region, "profile": target.profile,
            "api_url": target.api_url}
