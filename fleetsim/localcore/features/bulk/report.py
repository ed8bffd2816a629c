"""The input and report line formats of a bulk registration task ("Bulk registration" in the
AWS IoT developer guide: a newline-delimited JSON file, one device's parameter values a line).

A RESULTS line is what AWS writes, PascalCase inside `response` as the workshop's
`bulk-result.py` reads it:
    {"response": {"CertificatePem": "...", "ResourceArns": {"thing": "arn:..."}}, "offset": 0}
An ERRORS line names the offset and the error of that line (AWS does not document its exact
keys; these follow the RESULTS line and RegisterThing's error code and message):
    {"offset": 3, "errorCode": "InvalidRequestException", "errorMessage": "..."}
`offset` is the line's index in the input file, from 0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


class LineError(ValueError):
    """An input line that is not an object of string parameter values."""


def input_lines(data: bytes) -> Iterator[tuple[int, str]]:
    """(offset, text) of every non-blank line."""
    for offset, raw in enumerate(data.decode("utf-8", errors="replace").split("\n")):
        if raw.strip():
            yield offset, raw


def parameters(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise LineError(f"The line is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise LineError("The line is not a JSON object of parameter values")
    bad = sorted(k for k, v in value.items() if not isinstance(v, str))
    if bad:
        raise LineError(f"Parameter values must be strings: {', '.join(bad)}")
    return value


def result_line(offset: int, certificate_pem: str | None, resource_arns: dict[str, str]) -> str:
    response: dict[str, Any] = {}
    if certificate_pem is not None:
        response["CertificatePem"] = certificate_pem
    response["ResourceArns"] = dict(resource_arns)
    return json.dumps({"response": response, "offset": offset}, separators=(",", ":"))


def error_line(offset: int, code: str, message: str) -> str:
    return json.dumps({"offset": offset, "errorCode": code, "errorMessage": message},
                      separators=(",", ":"))
