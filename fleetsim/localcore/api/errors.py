"""API errors as AWS returns them: a code, a message and, for some codes, modelled fields."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class ApiError(Exception):
    """Raised by a handler; the protocol layer renders it (status from the service model)."""

    def __init__(self, code: str, message: str, status: int | None = None, **fields: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields


def not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFoundException", message)


def found(value: T | None, message: str = "The specified resource does not exist") -> T:
    """`value`, which a registry lookup returned; ResourceNotFoundException if there was none."""
    if value is None:
        raise not_found(message)
    return value


def invalid(message: str) -> ApiError:
    return ApiError("InvalidRequestException", message)


def already_exists(message: str, resource_id: str, resource_arn: str) -> ApiError:
    return ApiError("ResourceAlreadyExistsException", message, resourceId=resource_id,
                    resourceArn=resource_arn)


def delete_conflict(message: str) -> ApiError:
    return ApiError("DeleteConflictException", message)


def certificate_state(message: str) -> ApiError:
    return ApiError("CertificateStateException", message)


def version_conflict(message: str) -> ApiError:
    return ApiError("VersionConflictException", message)
