"""Parsing and validating IoT policy documents, as create-policy does before storing one.

The grammar is IAM's ("IAM JSON policy grammar"): a statement's `Condition` is an object whose
keys are condition operators and whose values are objects mapping a condition key to a value or
a non-empty list of values (strings, numbers or booleans). AWS IoT refuses anything else with
MalformedPolicyException, "Policy document is Malformed: ..." ("CreatePolicy", AWS IoT API
reference).
"""

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
    raise PolicyDocumentError(f"Policy document is Malformed: {field} must be a string or a "
                              "non-empty list of strings")


def _malformed(where: str, what: str) -> PolicyDocumentError:
    return PolicyDocumentError(f"Policy document is Malformed: {where} {what}")


def _is_condition_value(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and value is not None


def _check_condition(condition: Any, where: str) -> None:
    """IAM's condition block: {operator: {key: value | [value, ...]}, ...}."""
    if not isinstance(condition, dict) or not condition:
        raise _malformed(where, "must be a non-empty object of condition operators")
    for operator, block in condition.items():
        if not operator:
            raise _malformed(where, "has an empty condition operator")
        if not isinstance(block, dict) or not block:
            raise _malformed(f"{where}.{operator}", "must be a non-empty object of condition "
                             "keys")
        for key, values in block.items():
            if not key:
                raise _malformed(f"{where}.{operator}", "has an empty condition key")
            if isinstance(values, list):
                if not values or not all(_is_condition_value(v) for v in values):
                    raise _malformed(f"{where}.{operator}.{key}", "must be a string, number, "
                                     "boolean or a non-empty list of them")
            elif not _is_condition_value(values):
                raise _malformed(f"{where}.{operator}.{key}", "must be a string, number, "
                                 "boolean or a non-empty list of them")


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
    except RecursionError as e:
        raise PolicyDocumentError("Policy document is not valid JSON: nested too deeply") from e
    if not isinstance(doc, dict):
        raise PolicyDocumentError("Policy document is Malformed: the top level must be an object")
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyDocumentError("Policy document is Malformed: missing Statement")
    normalised = []
    for i, st in enumerate(statements):
        if not isinstance(st, dict):
            raise PolicyDocumentError(f"Policy document is Malformed: Statement[{i}] must be an "
                                      "object")
        effect = st.get("Effect")
        if effect not in _EFFECTS:
            raise PolicyDocumentError(f"Policy document is Malformed: Statement[{i}].Effect must "
                                      "be Allow or Deny")
        if "Action" not in st and "NotAction" not in st:
            raise PolicyDocumentError(f"Policy document is Malformed: Statement[{i}] has no "
                                      "Action")
        if "Resource" not in st and "NotResource" not in st:
            raise PolicyDocumentError(f"Policy document is Malformed: Statement[{i}] has no "
                                      "Resource")
        if "Condition" in st:
            _check_condition(st["Condition"], f"Statement[{i}].Condition")
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
