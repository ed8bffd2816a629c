"""A function's resource-based policy: the statements add-permission writes and whether one of
them lets a service invoke the function ("Working with resource-based IAM policies in
Lambda"; a statement as get-policy shows it:
`{"Sid": ..., "Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"},
"Action": "lambda:InvokeFunction", "Resource": <function ARN>,
"Condition": {"StringEquals": {"AWS:SourceAccount": ...}, "ArnLike": {"AWS:SourceArn": ...}}}`).
Pure: no storage."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

Statement = dict[str, Any]
INVOKE = "lambda:InvokeFunction"
_ACCOUNT = re.compile(r"\d{12}")


def principal_of(principal: str) -> Any:
    """How a statement names the principal add-permission was given: `*`, an account
    (`{"AWS": "arn:aws:iam::<account>:root"}`), an ARN, or a service."""
    if principal == "*":
        return "*"
    if _ACCOUNT.fullmatch(principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:"):
        return {"AWS": principal}
    return {"Service": principal}


def statement(sid: str, action: str, principal: str, resource: str,
              source_arn: str | None = None, source_account: str | None = None) -> Statement:
    out: Statement = {"Sid": sid, "Effect": "Allow", "Principal": principal_of(principal),
                      "Action": action, "Resource": resource}
    condition: dict[str, dict[str, str]] = {}
    if source_account:
        condition["StringEquals"] = {"AWS:SourceAccount": source_account}
    if source_arn:
        condition["ArnLike"] = {"AWS:SourceArn": source_arn}
    if condition:
        out["Condition"] = condition
    return out


def policy_document(statements: Sequence[Statement]) -> str:
    return json.dumps({"Version": "2012-10-17", "Id": "default",
                       "Statement": list(statements)}, separators=(",", ":"))


def _glob(pattern: str, value: str) -> bool:
    """ArnLike / StringLike: `*` any run of characters, `?` one character, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _principal_matches(named: Any, principal: str) -> bool:
    if named == "*":
        return True
    if not isinstance(named, dict):
        return False
    if "Service" in named:
        return bool(named["Service"] == principal)
    aws = named.get("AWS", "")
    if aws == "*" or aws == principal:
        return True
    # an account's root names every principal of that account
    m = re.fullmatch(r"arn:aws:iam::(\d{12}):root", aws)
    return m is not None and (principal == m.group(1) or
                              principal.startswith(f"arn:aws:iam::{m.group(1)}:"))


def _action_matches(action: str, wanted: str) -> bool:
    return action in ("*", "lambda:*") or action.lower() == wanted.lower()


def _conditions_hold(condition: dict[str, dict[str, str]], source_arn: str,
                     source_account: str) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = {"aws:sourcearn": source_arn,
                      "aws:sourceaccount": source_account}.get(key.lower())
            if actual is None or not actual:
                return False
            if operator in ("ArnLike", "StringLike", "ArnEquals"):
                ok = _glob(expected, actual) if operator != "ArnEquals" else expected == actual
            elif operator == "StringEquals":
                ok = expected == actual
            else:
                return False  # an operator add-permission does not write
            if not ok:
                return False
    return True


def allows(statements: Sequence[Statement], principal: str, source_arn: str,
           source_account: str, action: str = INVOKE) -> bool:
    """Whether an Allow statement lets `principal` do `action` for this source."""
    return any(s.get("Effect") == "Allow"
               and _principal_matches(s.get("Principal"), principal)
               and _action_matches(str(s.get("Action", "")), action)
               and _conditions_hold(s.get("Condition", {}), source_arn, source_account)
               for s in statements)
