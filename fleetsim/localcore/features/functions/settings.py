"""What create-function and update-function-configuration accept beyond the model's own
constraints, and a function's configuration as Lambda answers it (FunctionConfiguration).
Pure."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.functions import names
from fleetsim.localcore.features.functions.store import FunctionRow
from fleetsim.localcore.scope import Scope

DEFAULT_TIMEOUT_S = 3
MAX_TIMEOUT_S = 900
DEFAULT_MEMORY_MB = 128
NEWEST_PYTHON = "python3.13"
# Runtimes Lambda no longer lets a function be created or updated with ("Lambda runtimes",
# deprecated runtimes).
_BLOCKED = {"python2.7", "python3.6", "python3.7"}

# "Defined runtime environment variables": reserved keys a function's configuration cannot set.
RESERVED_KEYS = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"})


def invalid_parameter(message: str) -> AwsError:
    return AwsError("InvalidParameterValueException", message, Type="User")


def check_runtime(runtime: str) -> None:
    if runtime in _BLOCKED:
        raise invalid_parameter(
            f"The runtime parameter of {runtime} is no longer supported for creating or "
            f"updating AWS Lambda functions. We recommend you use the new runtime "
            f"({NEWEST_PYTHON}) while creating or updating functions.")
    if not runtime.startswith("python3."):
        raise invalid_parameter(f"local core runs Python functions only (python3.x runtimes); "
                                f"Runtime {runtime} is not supported here")


def check_timeout(timeout: int) -> None:
    if timeout > MAX_TIMEOUT_S:
        raise AwsError("ValidationException", "1 validation error detected: Value "
                       f"'{timeout}' at 'timeout' failed to satisfy constraint: Member must "
                       f"have value less than or equal to {MAX_TIMEOUT_S}")


def environment(params: Mapping[str, Any]) -> dict[str, str] | None:
    """Environment.Variables of a request (None if it has no Environment)."""
    env = params.get("Environment")
    if env is None:
        return None
    variables = dict(env.get("Variables") or {})
    reserved = sorted(k for k in variables if k in RESERVED_KEYS)
    if reserved:
        raise invalid_parameter(
            "Lambda was unable to configure your environment variables because the "
            "environment variables you have provided contains reserved keys that are currently "
            f"not supported for modification. Reserved keys used in this request: "
            f"{', '.join(reserved)}")
    return variables


def code_sha256(hex_digest: str) -> str:
    """CodeSha256 as Lambda shows it: the digest in base64."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def configuration(scope: Scope, f: FunctionRow) -> dict[str, Any]:
    """FunctionConfiguration, as get-function-configuration answers it."""
    out: dict[str, Any] = {
        "FunctionName": f.name, "FunctionArn": names.function_arn(scope, f.name),
        "Runtime": f.runtime, "Role": f.role, "Handler": f.handler, "CodeSize": f.code_size,
        "Description": f.description, "Timeout": f.timeout, "MemorySize": f.memory_size,
        "LastModified": names.last_modified(f.last_modified),
        "CodeSha256": code_sha256(f.code_sha256), "Version": names.LATEST,
        "TracingConfig": {"Mode": "PassThrough"}, "RevisionId": f.revision_id,
        "State": "Active", "LastUpdateStatus": "Successful", "PackageType": "Zip",
        "Architectures": ["x86_64"], "EphemeralStorage": {"Size": 512},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": names.log_group(f.name)},
    }
    if f.environment:
        out["Environment"] = {"Variables": dict(f.environment)}
    return out


def creating(config: dict[str, Any]) -> dict[str, Any]:
    """What create-function answers: the function is Pending until its environment is ready
    ("Lambda function states")."""
    return config | {"State": "Pending", "StateReason": "The function is being created.",
                     "StateReasonCode": "Creating"}


def updating(config: dict[str, Any]) -> dict[str, Any]:
    """What an update answers while it is applied ("Lambda function states")."""
    return config | {"LastUpdateStatus": "InProgress"}
