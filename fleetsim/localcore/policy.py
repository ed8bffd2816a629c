"""Evaluating AWS IoT Core policies: a pure module, no I/O.

Semantics (AWS IoT developer guide, "AWS IoT Core policies", "policy variables", "thing policy
variables"): an explicit Deny wins over any Allow; without a matching Allow the request is
denied. `*` and `?` are wildcards in Action and Resource (MQTT's `+`/`#` are literal there).
Policy variables are substituted as literal text; a statement that uses a variable which cannot
be resolved for this connection does not match. Thing variables resolve only for the connection's
thing (`Principal.connection_thing`): the attached thing named like the client id, or the
certificate's exclusive thing whatever the client id.

Everything about a connection (client id, certificate, thing) is fixed, so `CompiledPolicies`
substitutes variables and evaluates conditions once, then answers each request with at most two
pre-compiled regex matches.

The evaluator is total: it never raises, whatever the stored document. create-policy refuses
malformed documents, but a statement it cannot read (a state written before that check) is
treated as a statement whose condition does not hold: it matches nothing.
"""

from __future__ import annotations

import enum
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetsim.localcore.principal import Principal, ThingInfo

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERALS = {"*": "*", "?": "?", "$": "$"}  # ${*}, ${?}, ${$}: the character itself, literally


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


@dataclass(frozen=True)
class RequestContext:
    """What policy variables and condition keys resolve from, for one connection."""

    client_id: str
    principal: Principal | None = None
    # iot:ConnectAttributes: "PersistentConnect" (clean session 0), "LastWill" (a will is set).
    connect_attributes: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def thing(self) -> ThingInfo | None:
        if self.principal is None:
            return None
        return self.principal.connection_thing(self.client_id)

    def resolve(self, name: str) -> str | None:
        """The value of a policy variable / condition key, or None if it has none here."""
        if name in _LITERALS:
            return _LITERALS[name]
        if name in self.extra:
            return self.extra[name]
        if name == "iot:ClientId":
            return self.client_id
        if name == "iot:Certificate.Subject.CommonName":
            return self.principal.subject_common_name if self.principal else None
        if name == "iot:Connection.Thing.IsAttached":
            return "true" if self.thing is not None else "false"
        if name.startswith("iot:Connection.Thing."):
            return self._thing_variable(name.removeprefix("iot:Connection.Thing."))
        return None

    def _thing_variable(self, rest: str) -> str | None:
        thing = self.thing
        if thing is None:
            return None
        if rest == "ThingName":
            return thing.name
        if rest == "ThingTypeName":
            return thing.type_name
        if rest.startswith("Attributes[") and rest.endswith("]"):
            return thing.attributes.get(rest[len("Attributes["):-1])
        return None


class _Unresolved(Exception):
    pass


def _pattern_regex(pattern: str, context: RequestContext) -> str:
    """A regex (source) for one Action/Resource pattern, variables substituted literally."""
    out: list[str] = []
    pos = 0
    for m in _VARIABLE.finditer(pattern):
        out.append(_wildcards(pattern[pos:m.start()]))
        value = context.resolve(m.group(1))
        if value is None:
            raise _Unresolved(m.group(1))
        out.append(re.escape(value))
        pos = m.end()
    out.append(_wildcards(pattern[pos:]))
    return "".join(out)


def _wildcards(text: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


class _Unreadable(Exception):
    """A part of a statement that is not of the grammar's shape."""


def _as_list(value: Any) -> list[str]:
    """Action/Resource: a string or a list of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise _Unreadable


def _condition_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise _Unreadable


def _condition_list(value: Any) -> list[str]:
    """A condition value: a string, number or boolean, or a list of them."""
    if isinstance(value, list):
        return [_condition_value(v) for v in value]
    return [_condition_value(value)]


# --- conditions -----------------------------------------------------------------------------

def _string_like(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


_OPERATORS = {
    "StringEquals": lambda v, p: v == p,
    "StringNotEquals": lambda v, p: v != p,
    "StringEqualsIgnoreCase": lambda v, p: v.lower() == p.lower(),
    "StringNotEqualsIgnoreCase": lambda v, p: v.lower() != p.lower(),
    "StringLike": _string_like,
    "StringNotLike": lambda v, p: not _string_like(v, p),
    "ArnEquals": lambda v, p: v == p,
    "ArnLike": _string_like,
    "Bool": lambda v, p: v.lower() == p.lower(),
}
_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike"}


def _condition_values(key: str, context: RequestContext) -> list[str] | None:
    if key == "iot:ConnectAttributes":
        return list(context.connect_attributes)
    value = context.resolve(key)
    return None if value is None else [value]


def _conditions_hold(conditions: Any, context: RequestContext) -> bool:
    """IAM condition semantics for the operators above; an unknown operator never holds."""
    if not isinstance(conditions, Mapping):
        raise _Unreadable
    for raw_operator, block in conditions.items():
        operator, if_exists = raw_operator, False
        quantifier = None
        if ":" in operator:
            quantifier, operator = operator.split(":", 1)
        if operator.endswith("IfExists"):
            operator, if_exists = operator.removesuffix("IfExists"), True
        test = _OPERATORS.get(operator)
        if test is None or quantifier not in (None, "ForAnyValue", "ForAllValues"):
            return False
        if not isinstance(block, Mapping):
            raise _Unreadable
        for key, expected in block.items():
            patterns = [_substitute_condition(p, context) for p in _condition_list(expected)]
            values = _condition_values(key, context)
            if values is None:
                if if_exists:
                    continue
                return False
            if quantifier == "ForAllValues":
                ok = all(any(test(v, p) for p in patterns) for v in values)
            elif operator in _NEGATED:
                ok = bool(values) and all(test(v, p) for v in values for p in patterns)
            else:
                ok = any(test(v, p) for v in values for p in patterns)
            if not ok:
                return False
    return True


def _substitute_condition(pattern: str, context: RequestContext) -> str:
    def repl(m: re.Match[str]) -> str:
        value = context.resolve(m.group(1))
        if value is None:
            raise _Unresolved(m.group(1))
        return value
    return _VARIABLE.sub(repl, pattern)


# --- compilation ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Statement:
    effect: str
    actions: re.Pattern[str]
    not_action: bool
    resources: re.Pattern[str]
    not_resource: bool

    def applies(self, action: str, resource: str) -> bool:
        if (self.actions.fullmatch(action) is not None) == self.not_action:
            return False
        return (self.resources.fullmatch(resource) is not None) != self.not_resource


def _union(sources: Sequence[str], flags: int = 0) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{s})" for s in sources) or "(?!)", flags | re.DOTALL)


def _compile_statement(st: Mapping[str, Any], context: RequestContext) -> _Statement | None:
    """The statement ready to match, or None when it cannot match for this context."""
    try:
        if "Condition" in st and not _conditions_hold(st["Condition"], context):
            return None
        not_action = "Action" not in st
        actions = _as_list(st.get("NotAction") if not_action else st.get("Action"))
        not_resource = "Resource" not in st
        resources = _as_list(st.get("NotResource") if not_resource else st.get("Resource"))
        return _Statement(
            effect=st.get("Effect", ""),
            actions=_union([_pattern_regex(a, context) for a in actions], re.IGNORECASE),
            not_action=not_action,
            resources=_union([_pattern_regex(r, context) for r in resources]),
            not_resource=not_resource,
        )
    except (_Unresolved, _Unreadable):
        return None


class CompiledPolicies:
    """Every statement of a principal's policies, compiled for one connection's context."""

    __slots__ = ("_by_action", "_statements")

    def __init__(self, policies: Iterable[Mapping[str, Any]], context: RequestContext):
        compiled = (_compile_statement(st, context)
                    for doc in policies for st in _statements(doc))
        self._statements = tuple(s for s in compiled if s is not None)
        self._by_action: dict[str, tuple[re.Pattern[str], re.Pattern[str],
                                         tuple[_Statement, ...]]] = {}

    def evaluate(self, action: str, resource: str) -> Decision:
        entry = self._by_action.get(action)
        if entry is None:
            entry = self._by_action[action] = self._for_action(action)
        deny, allow, others = entry
        if deny.fullmatch(resource) is not None:
            return Decision.EXPLICIT_DENY
        allowed = allow.fullmatch(resource) is not None
        for st in others:  # statements with NotResource: rare, matched one by one
            if st.applies(action, resource):
                if st.effect == "Deny":
                    return Decision.EXPLICIT_DENY
                allowed = allowed or st.effect == "Allow"
        return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY

    def _for_action(self, action: str) -> tuple[re.Pattern[str], re.Pattern[str],
                                                 tuple[_Statement, ...]]:
        deny: list[str] = []
        allow: list[str] = []
        others: list[_Statement] = []
        for st in self._statements:
            if (st.actions.fullmatch(action) is not None) == st.not_action:
                continue
            if st.not_resource:
                others.append(st)
            elif st.effect == "Deny":
                deny.append(st.resources.pattern)
            elif st.effect == "Allow":
                allow.append(st.resources.pattern)
        return _union(deny), _union(allow), tuple(others)


# Documents whose statements read nothing of the connection compile the same for every client:
# keyed by the identity of the documents (the policies service hands out one parsed object per
# policy version), and holding them, so an id is not reused while its entry lives.
_SHARED_LIMIT = 1024
_shared: dict[tuple[int, ...], tuple[tuple[Mapping[str, Any], ...], CompiledPolicies]] = {}
_independent: dict[int, tuple[Mapping[str, Any], bool]] = {}


def compiled_for(policies: Sequence[Mapping[str, Any]],
                 context: RequestContext) -> CompiledPolicies:
    """`CompiledPolicies(policies, context)`, shared between connections when no statement
    depends on the connection (no policy variable, no condition): a fleet's devices with one
    policy then compile it once, not once per connection."""
    key = tuple(map(id, policies))
    hit = _shared.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], policies, strict=True)):
        return hit[1]
    compiled = CompiledPolicies(policies, context)
    if all(_context_free(doc) for doc in policies):
        if len(_shared) >= _SHARED_LIMIT:
            _shared.clear()
        _shared[key] = (tuple(policies), compiled)
    return compiled


def _context_free(doc: Mapping[str, Any]) -> bool:
    hit = _independent.get(id(doc))
    if hit is not None and hit[0] is doc:
        return hit[1]
    try:
        free = "${" not in json.dumps(doc) and not any("Condition" in st
                                                     for st in _statements(doc))
    except (TypeError, ValueError):
        free = False
    if len(_independent) >= _SHARED_LIMIT:
        _independent.clear()
    _independent[id(doc)] = (doc, free)
    return free


def _statements(doc: Any) -> list[Mapping[str, Any]]:
    """The statements of a document; what is not a statement object is skipped."""
    statements = doc.get("Statement", []) if isinstance(doc, Mapping) else []
    if isinstance(statements, Mapping):
        return [statements]
    if isinstance(statements, list):
        return [st for st in statements if isinstance(st, Mapping)]
    return []


def evaluate(policies: Iterable[Mapping[str, Any]], action: str, resource: str,
             context: RequestContext) -> Decision:
    """One-shot evaluation; the broker keeps a `CompiledPolicies` per connection instead."""
    return CompiledPolicies(policies, context).evaluate(action, resource)


def resource_arn(region: str, account_id: str, kind: str, name: str) -> str:
    """`arn:aws:iot:REGION:ACCOUNT:KIND/NAME` (kind: client, topic, topicfilter, thing)."""
    return f"arn:aws:iot:{region}:{account_id}:{kind}/{name}"
