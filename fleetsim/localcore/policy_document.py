"""Parsing and validating IoT policy documents, as create-policy does before storing one."""

from __future__ import annotations

import json
from typing import Any


class PolicyDocumentError(ValueError):
    """The document is not a valid IoT policy; AWS answers MalformedPolicyException."""


_EFFECTS = {"Allow", "Deny"}
_MAX_BYTES = 2048  # AWS IoT: policy document size limit (2048 characters, whitespace excluded)


def _as_list(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise PolicyDocumentError(f"Policy document is malformed: {field} must be a string or a "
                              "non-empty list of strings")


def parse_policy_document(text: str) -> dict[str, Any]:
    """Return the document normalised (Statement, Action and Resource as lists)."""
    if len("".join(text.split())) > _MAX_BYTES:
        raise PolicyDocumentError("Policy document is too large: at most 2048 characters "
                                  "excluding whitespace")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyDocumentError(f"Policy document is not valid JSON: {e.msg} at line "
                                  f"{e.lineno} column {e.colno}") from e
    if not isinstance(doc, dict):
        raise PolicyDocumentError("Policy document is malformed: the top level must be an object")
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyDocumentError("Policy document is malformed: missing Statement")
    normalised = []
    for i, st in enumerate(statements):
        if not isinstance(st, dict):
            raise PolicyDocumentError(f"Policy document is malformed: Statement[{i}] must be an "
                                      "object")
        effect = st.get("Effect")
        if effect not in _EFFECTS:
            raise PolicyDocumentError(f"Policy document is malformed: Statement[{i}].Effect must "
                                      "be Allow or Deny")
        if "Action" not in st and "NotAction" not in st:
            raise PolicyDocumentError(f"Policy document is malformed: Statement[{i}] has no "
                                      "Action")
        if "Resource" not in st and "NotResource" not in st:
            raise PolicyDocumentError(f"Policy document is malformed: Statement[{i}] has no "
                                      "Resource")
        out = dict(st)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in st:
                out[key] = _as_list(st[key], f"Statement[{i}].{key}")
        normalised.append(out)
    return {**doc, "Statement": normalised}


# The policy that allows every IoT action on every resource (workshops, tests, benchmarks).
ALLOW_ALL_DOCUMENT: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
ALLOW_ALL = json.dumps(ALLOW_ALL_DOCUMENT)
