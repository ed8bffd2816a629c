"""AWS API failures as one readable sentence, keeping AWS's error code for the metrics."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from fleetsim.errors import UserError


class ApiError(UserError):
    def __init__(self, operation: str, code: str, message: str, subject: str = ""):
        self.code = code  # AWS's error code, e.g. ResourceNotFoundException
        about = f" for {subject}" if subject else ""
        super().__init__(f"{operation}{about} failed: {code}: {message}")


def api_error(operation: str, exc: ClientError | BotoCoreError, subject: str = "") -> ApiError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return ApiError(operation, err.get("Code", "Unknown"), err.get("Message", str(exc)),
                        subject)
    return ApiError(operation, type(exc).__name__, str(exc), subject)
