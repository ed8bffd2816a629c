"""Function identifiers as Lambda accepts them ("Name formats" of the Lambda API reference:
`my-function`, `my-function:v1`, `arn:aws:lambda:us-west-2:123456789012:function:my-function`,
`123456789012:function:my-function`, each with an optional version or alias), their ARNs, and
the names Lambda gives a function's log group and log streams."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from fleetsim.localcore.scope import Scope

LATEST = "$LATEST"
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_QUALIFIER = re.compile(r"\$LATEST|[a-zA-Z0-9_-]{1,128}")


@dataclass(frozen=True)
class FunctionId:
    name: str
    qualifier: str | None = None
    region: str | None = None
    account_id: str | None = None


def parse(identifier: str) -> FunctionId | None:
    """The parts of a function name, partial ARN or ARN; None if it is none of them."""
    parts = identifier.split(":")
    region = account = None
    if parts[0] == "arn":
        if len(parts) not in (7, 8) or parts[2] != "lambda" or parts[5] != "function":
            return None
        region, account, rest = parts[3], parts[4], parts[6:]
    elif len(parts) in (3, 4) and parts[1] == "function":
        account, rest = parts[0], parts[2:]
    elif len(parts) in (1, 2):
        rest = parts
    else:
        return None
    name, qualifier = rest[0], (rest[1] if len(rest) > 1 else None)
    if not _NAME.fullmatch(name) or (qualifier is not None and
                                     not _QUALIFIER.fullmatch(qualifier)):
        return None
    return FunctionId(name, qualifier, region, account)


def function_arn(scope: Scope, name: str) -> str:
    return f"arn:aws:lambda:{scope.region}:{scope.account_id}:function:{name}"


def log_group(name: str) -> str:
    return f"/aws/lambda/{name}"


def log_stream(now: float, version: str = LATEST) -> str:
    """`2024/01/31/[$LATEST]` and 32 hex digits: one stream per execution environment
    ("Sending Lambda function logs to CloudWatch Logs")."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{secrets.token_hex(16)}"


def last_modified(now: float) -> str:
    """Lambda's LastModified: `2019-09-24T18:20:35.054+0000`."""
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"
