"""Provisioning templates as AWS IoT documents them ("Provisioning templates", developer guide):
parse and validate a template body, then render it with parameter values into the resources to
apply. Pure: no database, no AWS error types (a `TemplateError` carries one sentence).

- `Parameters`: each a name with `Type` (`String`) and an optional `Default`, used when the
  parameters passed in do not hold a value for it.
- `Resources`: logical names, each with `Type` `AWS::IoT::Thing` (`ThingName`,
  `AttributePayload`, `ThingTypeName`, `ThingGroups`, `BillingGroup`, `PackageVersions`),
  `AWS::IoT::Certificate` (`CertificateSigningRequest`, `CertificateId`, or `CertificatePem`
  with an optional `CACertificatePem`; `Status`) or `AWS::IoT::Policy` (`PolicyName`,
  `PolicyDocument`), its `Properties` and optional `OverrideSettings`: for a resource that
  already exists, DO_NOTHING, REPLACE, FAIL (ResourceConflictsException) or MERGE (only for a
  thing's `AttributePayload` and `ThingGroups`).
- Intrinsic functions: `Ref`, `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`,
  `Fn::Sub` (CloudFormation's semantics); `Mappings` and `DeviceConfiguration` belong to fleet
  provisioning templates only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

THING, CERTIFICATE, POLICY = "AWS::IoT::Thing", "AWS::IoT::Certificate", "AWS::IoT::Policy"
ACTIONS = ("DO_NOTHING", "REPLACE", "FAIL", "MERGE")
STATUSES = ("ACTIVE", "INACTIVE")
MAX_BODY = 10240  # botocore's TemplateBody shape

PROPERTIES: dict[str, tuple[str, ...]] = {
    THING: ("ThingName", "AttributePayload", "ThingTypeName", "ThingGroups", "BillingGroup",
            "PackageVersions"),
    CERTIFICATE: ("CertificateSigningRequest", "CertificateId", "CertificatePem",
                  "CACertificatePem", "Status"),
    POLICY: ("PolicyName", "PolicyDocument"),
}
# Which properties OverrideSettings may name, and the actions each allows.
OVERRIDABLE: dict[str, dict[str, tuple[str, ...]]] = {
    THING: {"AttributePayload": ACTIONS, "ThingTypeName": ACTIONS[:3],
            "ThingGroups": ACTIONS, "BillingGroup": ACTIONS[:3],
            "PackageVersions": ACTIONS[:3]},
    CERTIFICATE: {"Status": ACTIONS[:3]},
    POLICY: {"PolicyDocument": ACTIONS[:3]},
}
SECTIONS = ("Parameters", "Resources")
FLEET_SECTIONS = ("Mappings", "DeviceConfiguration")
FUNCTIONS = ("Ref", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::FindInMap", "Fn::Sub")
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")
# botocore's iot model: PackageName [a-zA-Z0-9-_.]+ (1-128), VersionName (1-64).
_PACKAGE_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_VERSION_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,64}")


class TemplateError(ValueError):
    """The template (or its parameters) is not valid: one sentence naming what and where."""


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    default: str | None


@dataclass(frozen=True, slots=True)
class Resource:
    logical_name: str
    type: str
    properties: dict[str, Any]
    overrides: dict[str, str]


@dataclass(frozen=True, slots=True)
class Template:
    parameters: dict[str, Parameter]
    resources: tuple[Resource, ...]
    mappings: dict[str, Any] = field(default_factory=dict)
    device_configuration: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ThingSpec:
    logical_name: str
    name: str
    attributes: dict[str, str] | None
    type_name: str | None
    groups: tuple[str, ...] | None
    billing_group: str | None
    package_versions: dict[str, str] | None  # package name -> version name
    overrides: dict[str, str]


@dataclass(frozen=True, slots=True)
class CertificateSpec:
    logical_name: str
    csr: str | None
    certificate_id: str | None
    pem: str | None
    ca_pem: str | None
    status: str | None  # None: not given (ACTIVE for a new certificate)
    overrides: dict[str, str]


@dataclass(frozen=True, slots=True)
class PolicySpec:
    logical_name: str
    name: str | None
    document: str | None
    overrides: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A template with its parameters applied: what to create, attach or leave."""

    thing: ThingSpec | None
    certificate: CertificateSpec | None
    policies: tuple[PolicySpec, ...]
    device_configuration: dict[str, Any]


# --- parsing -----------------------------------------------------------------------------------

def parse(body: str, *, fleet: bool = False) -> Template:
    """The template in `body`; TemplateError if it is not one AWS accepts. `fleet`: a fleet
    provisioning template (may hold `Mappings` and `DeviceConfiguration`)."""
    if len(body) > MAX_BODY:
        raise TemplateError(f"The template body is longer than {MAX_BODY} characters.")
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise TemplateError(f"The template body is not valid JSON: {e}.") from None
    if not isinstance(doc, dict):
        raise TemplateError("The template body must be a JSON object.")
    allowed = SECTIONS + (FLEET_SECTIONS if fleet else ())
    for key in doc:
        if key not in allowed:
            where = "" if fleet or key not in FLEET_SECTIONS else \
                " (only fleet provisioning templates have it)"
            raise TemplateError(f"The template has an unknown section {key!r}{where}; "
                                f"allowed: {', '.join(allowed)}.")
    parameters = _parameters(doc.get("Parameters", {}))
    mappings = doc.get("Mappings", {})
    if not isinstance(mappings, dict) or not all(
            isinstance(m, dict) and all(isinstance(v, dict) for v in m.values())
            for m in mappings.values()):
        raise TemplateError("Mappings must map each map name to top-level keys, each holding "
                            "second-level keys and values.")
    device_configuration = doc.get("DeviceConfiguration", {})
    if not isinstance(device_configuration, dict):
        raise TemplateError("DeviceConfiguration must be a JSON object.")
    resources = doc.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError("The template must have a Resources section with at least one "
                            "resource.")
    parsed = tuple(_resource(name, r) for name, r in resources.items())
    for kind in (THING, CERTIFICATE):
        if sum(r.type == kind for r in parsed) > 1:
            raise TemplateError(f"The template declares more than one {kind} resource.")
    template = Template(parameters, parsed, mappings, device_configuration)
    _check_references(template)
    return template


def _parameters(section: Any) -> dict[str, Parameter]:
    if not isinstance(section, dict):
        raise TemplateError("Parameters must be a JSON object of parameter declarations.")
    out: dict[str, Parameter] = {}
    for name, decl in section.items():
        if not isinstance(decl, dict):
            raise TemplateError(f"Parameter {name} must be an object with a Type.")
        unknown = set(decl) - {"Type", "Default"}
        if unknown:
            raise TemplateError(f"Parameter {name} has unknown keys {sorted(unknown)}; allowed: "
                                "Type, Default.")
        if decl.get("Type") != "String":
            raise TemplateError(f"Parameter {name} has Type {decl.get('Type')!r}; parameters "
                                "are of Type String.")
        default = decl.get("Default")
        if default is not None and not isinstance(default, str):
            raise TemplateError(f"The Default of parameter {name} must be a string.")
        out[name] = Parameter(name, "String", default)
    return out


def _resource(name: str, decl: Any) -> Resource:
    if not isinstance(decl, dict):
        raise TemplateError(f"Resource {name} must be an object with Type and Properties.")
    kind = decl.get("Type")
    if kind not in PROPERTIES:
        raise TemplateError(f"Resource {name} has Type {kind!r}; valid types: "
                            f"{', '.join(PROPERTIES)}.")
    unknown = set(decl) - {"Type", "Properties", "OverrideSettings"}
    if unknown:
        raise TemplateError(f"Resource {name} has unknown keys {sorted(unknown)}; allowed: "
                            "Type, Properties, OverrideSettings.")
    props = decl.get("Properties", {})
    if not isinstance(props, dict):
        raise TemplateError(f"The Properties of resource {name} must be a JSON object.")
    bad = [p for p in props if p not in PROPERTIES[kind]]
    if bad:
        raise TemplateError(f"Resource {name} ({kind}) has unknown properties {sorted(bad)}; "
                            f"allowed: {', '.join(PROPERTIES[kind])}.")
    overrides = decl.get("OverrideSettings", {})
    if not isinstance(overrides, dict):
        raise TemplateError(f"The OverrideSettings of resource {name} must be a JSON object.")
    for prop, action in overrides.items():
        allowed = OVERRIDABLE[kind].get(prop)
        if allowed is None:
            raise TemplateError(f"The OverrideSettings of resource {name} name {prop!r}, which "
                                f"a {kind} cannot override; allowed: "
                                f"{', '.join(OVERRIDABLE[kind])}.")
        if action not in allowed:
            raise TemplateError(f"The OverrideSettings of resource {name} set {prop} to "
                                f"{action!r}; allowed: {', '.join(allowed)}.")
    if kind == THING and "ThingName" not in props:
        raise TemplateError(f"Resource {name} ({THING}) must have a ThingName.")
    if kind == CERTIFICATE:
        given = [p for p in ("CertificateSigningRequest", "CertificateId", "CertificatePem")
                 if p in props]
        if len(given) != 1:
            raise TemplateError(f"Resource {name} ({CERTIFICATE}) must have exactly one of "
                                "CertificateSigningRequest, CertificateId or CertificatePem.")
        if "CACertificatePem" in props and "CertificatePem" not in props:
            raise TemplateError(f"Resource {name} ({CERTIFICATE}) has CACertificatePem "
                                "without CertificatePem.")
    if kind == POLICY and not ({"PolicyName", "PolicyDocument"} & set(props)):
        raise TemplateError(f"Resource {name} ({POLICY}) must have a PolicyName or a "
                            "PolicyDocument.")
    return Resource(name, kind, props, dict(overrides))


def _check_references(template: Template) -> None:
    """Every Ref names a declared parameter, every Fn::FindInMap a declared map (when its
    name is literal), and every function is one AWS lists."""
    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")
        elif isinstance(node, dict):
            fn = _function(node, where)
            if fn == "Ref":
                ref = node["Ref"]
                if not isinstance(ref, str) or ref not in template.parameters:
                    raise TemplateError(f"{where}: Ref {ref!r} does not name a parameter "
                                        "declared in Parameters.")
                return
            if fn == "Fn::FindInMap":
                args = node[fn]
                if isinstance(args, list) and args and isinstance(args[0], str) and \
                        args[0] not in template.mappings:
                    raise TemplateError(f"{where}: Fn::FindInMap names map {args[0]!r}, which "
                                        "Mappings does not declare.")
            if fn == "Fn::Sub":
                _check_sub(node[fn], template, where)
            for key, value in node.items():
                walk(value, f"{where}.{key}")

    for r in template.resources:
        walk(r.properties, f"Resources.{r.logical_name}.Properties")
    walk(template.device_configuration, "DeviceConfiguration")


def _check_sub(args: Any, template: Template, where: str) -> None:
    if isinstance(args, str):
        text, local = args, {}
    elif isinstance(args, list) and len(args) == 2 and isinstance(args[0], str) and \
            isinstance(args[1], dict):
        text, local = args[0], args[1]
    else:
        raise TemplateError(f"{where}: Fn::Sub takes a string, or [string, {{name: value}}].")
    for name in _SUB_VAR.findall(text):
        if name.startswith("!"):
            continue
        if name not in local and name not in template.parameters:
            raise TemplateError(f"{where}: Fn::Sub refers to ${{{name}}}, which is neither a "
                                "parameter nor one of its variables.")


def _function(node: dict[str, Any], where: str) -> str | None:
    """The intrinsic function `node` calls, None if it is a plain object."""
    if len(node) != 1:
        return None
    (key,) = node
    if key == "Ref" or key.startswith("Fn::"):
        if key not in FUNCTIONS:
            raise TemplateError(f"{where}: {key} is not a supported intrinsic function; "
                                f"supported: {', '.join(FUNCTIONS)}.")
        return key
    return None


# --- rendering ---------------------------------------------------------------------------------

def values_for(template: Template, given: dict[str, str]) -> dict[str, str]:
    """The value of every declared parameter: given, else its default; TemplateError naming
    those with neither."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, param in template.parameters.items():
        value = given.get(name, param.default)
        if value is None:
            missing.append(name)
        elif not isinstance(value, str):
            raise TemplateError(f"The value of parameter {name} must be a string.")
        else:
            values[name] = value
    if missing:
        raise TemplateError(f"No value and no Default for parameter(s) {', '.join(missing)}.")
    return values


def render(template: Template, given: dict[str, str]) -> Rendered:
    values = values_for(template, given)
    ev = _Evaluator(values, template.mappings)
    thing: ThingSpec | None = None
    certificate: CertificateSpec | None = None
    policies: list[PolicySpec] = []
    for r in template.resources:
        where = f"Resources.{r.logical_name}.Properties"
        p = {k: ev.eval(v, f"{where}.{k}") for k, v in r.properties.items()}
        if r.type == THING:
            thing = ThingSpec(
                r.logical_name, _string(p["ThingName"], f"{where}.ThingName"),
                _attributes(p["AttributePayload"], f"{where}.AttributePayload")
                if "AttributePayload" in p else None,
                _optional_string(p.get("ThingTypeName"), f"{where}.ThingTypeName"),
                tuple(_string(g, f"{where}.ThingGroups")
                      for g in _list(p["ThingGroups"], f"{where}.ThingGroups"))
                if "ThingGroups" in p else None,
                _optional_string(p.get("BillingGroup"), f"{where}.BillingGroup"),
                _package_versions(p["PackageVersions"], f"{where}.PackageVersions")
                if "PackageVersions" in p else None, r.overrides)
        elif r.type == CERTIFICATE:
            status = _optional_string(p.get("Status"), f"{where}.Status")
            if status is not None:
                if status.upper() not in STATUSES:
                    raise TemplateError(f"{where}.Status is {status!r}; allowed: ACTIVE, "
                                        "INACTIVE.")
                status = status.upper()
            certificate = CertificateSpec(
                r.logical_name,
                _optional_string(p.get("CertificateSigningRequest"),
                                 f"{where}.CertificateSigningRequest"),
                _optional_string(p.get("CertificateId"), f"{where}.CertificateId"),
                _optional_string(p.get("CertificatePem"), f"{where}.CertificatePem"),
                _optional_string(p.get("CACertificatePem"), f"{where}.CACertificatePem"),
                status, r.overrides)
        else:
            document = p.get("PolicyDocument")
            if isinstance(document, dict):  # an object is accepted as the document itself
                document = json.dumps(document)
            policies.append(PolicySpec(
                r.logical_name, _optional_string(p.get("PolicyName"), f"{where}.PolicyName"),
                _optional_string(document, f"{where}.PolicyDocument"), r.overrides))
    device_configuration = {k: ev.eval(v, f"DeviceConfiguration.{k}")
                            for k, v in template.device_configuration.items()}
    return Rendered(thing, certificate, tuple(policies), device_configuration)


class _Evaluator:
    def __init__(self, values: dict[str, str], mappings: dict[str, Any]):
        self.values = values
        self.mappings = mappings

    def eval(self, node: Any, where: str) -> Any:
        if isinstance(node, list):
            return [self.eval(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        fn = _function(node, where)
        if fn is None:
            return {k: self.eval(v, f"{where}.{k}") for k, v in node.items()}
        arg = node[fn]
        here = f"{where}.{fn}"
        if fn == "Ref":
            return self.values[arg]
        if fn == "Fn::Join":
            args = self._args(arg, 2, fn, here)
            delimiter = _string(self.eval(args[0], here), f"{here}[0]")
            items = _list(self.eval(args[1], f"{here}[1]"), f"{here}[1]")
            return delimiter.join(_string(i, f"{here}[1]") for i in items)
        if fn == "Fn::Select":
            args = self._args(arg, 2, fn, here)
            index = self.eval(args[0], f"{here}[0]")
            items = _list(self.eval(args[1], f"{here}[1]"), f"{here}[1]")
            try:
                i = int(index)
            except (TypeError, ValueError):
                raise TemplateError(f"{here}: the index {index!r} is not an integer.") from None
            if not 0 <= i < len(items):
                raise TemplateError(f"{here}: index {i} is outside the list of {len(items)} "
                                    "item(s).")
            return items[i]
        if fn == "Fn::Split":
            args = self._args(arg, 2, fn, here)
            delimiter = _string(self.eval(args[0], f"{here}[0]"), f"{here}[0]")
            text = _string(self.eval(args[1], f"{here}[1]"), f"{here}[1]")
            if not delimiter:
                raise TemplateError(f"{here}: the delimiter is empty.")
            return text.split(delimiter)
        if fn == "Fn::FindInMap":
            args = [_string(self.eval(a, f"{here}[{i}]"), f"{here}[{i}]")
                    for i, a in enumerate(self._args(arg, 3, fn, here))]
            try:
                return self.mappings[args[0]][args[1]][args[2]]
            except (KeyError, TypeError):
                raise TemplateError(f"{here}: Mappings has no {args[0]} > {args[1]} > "
                                    f"{args[2]}.") from None
        return self._sub(arg, here)

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, local = arg, {}
        else:
            text = arg[0]
            local = {k: _string(self.eval(v, f"{where}[1].{k}"), f"{where}[1].{k}")
                     for k, v in arg[1].items()}

        def replace(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return local[name]
            return self.values[name]
        return _SUB_VAR.sub(replace, text)

    @staticmethod
    def _args(arg: Any, n: int, fn: str, where: str) -> list[Any]:
        if not isinstance(arg, list) or len(arg) != n:
            raise TemplateError(f"{where}: {fn} takes a list of {n} arguments.")
        return arg


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"{where} must be a string, not {type(value).__name__}.")
    return value


def _optional_string(value: Any, where: str) -> str | None:
    return None if value is None else _string(value, where)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TemplateError(f"{where} must be a list, not {type(value).__name__}.")
    return value


def _attributes(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TemplateError(f"{where} must be an object of attribute names and values.")
    return {k: _string(v, f"{where}.{k}") for k, v in value.items()}


def _package_versions(value: Any, where: str) -> dict[str, str]:
    """`PackageVersions`: an object of package names and the version name of each."""
    if not isinstance(value, dict):
        raise TemplateError(f"{where} must be an object of package names and version names.")
    out: dict[str, str] = {}
    for package, version in value.items():
        version = _string(version, f"{where}.{package}")
        if not _PACKAGE_NAME.fullmatch(package):
            raise TemplateError(f"{where}: {package!r} is not a package name (1-128 of "
                                "a-z A-Z 0-9 - _ .).")
        if not _VERSION_NAME.fullmatch(version):
            raise TemplateError(f"{where}.{package}: {version!r} is not a version name (1-64 "
                                "of a-z A-Z 0-9 - _ .).")
        out[package] = version
    return out
