"""Local core's wire errors, as AWS returns them: a code, a message and, for some codes, modelled
fields. (Not `fleetsim.control.errors.ApiError`, which is the client side's user error.)"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class AwsError(Exception):
    """Raised by a handler; the protocol layer renders it (status from the service model)."""

    def __init__(self, code: str, message: str, status: int | None = None, **fields: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields


def not_found(message: str) -> AwsError:
    return AwsError("ResourceNotFoundException", message)


def found(value: T | None, message: str = "The specified resource does not exist") -> T:
    """`value`, which a registry lookup returned; ResourceNotFoundException if there was none."""
    if value is None:
        raise not_found(message)
    return value


def invalid(message: str) -> AwsError:
    return AwsError("InvalidRequestException", message)


def already_exists(message: str, resource_id: str, resource_arn: str) -> AwsError:
    return AwsError("ResourceAlreadyExistsException", message, resourceId=resource_id,
                    resourceArn=resource_arn)


def delete_conflict(message: str) -> AwsError:
    return AwsError("DeleteConflictException", message)


def certificate_state(message: str) -> AwsError:
    return AwsError("CertificateStateException", message)


def version_conflict(message: str) -> AwsError:
    return AwsError("VersionConflictException", message)
