"""Plain helpers shared by tests: the allow-all policy, boto3 clients for a local core, error
codes of a ClientError."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fleetsim.localcore.policy_document import ALLOW_ALL, ALLOW_ALL_DOCUMENT

__all__ = ["ALLOW_ALL", "ALLOW_ALL_DOCUMENT", "aws_client", "code_of"]



def aws_client(api_url: str, service: str = "iot", max_attempts: int | None = 1) -> Any:
    """A boto3 client of `service` for the local core at `api_url`; `max_attempts=None` keeps
    botocore's default retries."""
    config = None if max_attempts is None else Config(retries={"max_attempts": max_attempts})
    return boto3.client(service, endpoint_url=api_url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x", config=config)


def code_of(e: pytest.ExceptionInfo[ClientError]) -> str:
    return e.value.response["Error"]["Code"]
