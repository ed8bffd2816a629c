"""Test doubles for running engine steps without local core: a fake AWS IoT client (control
plane and `iot-data`), a fake device session, and a `RunContext` built on them.

    iot = FakeIot()
    iot.fail("CreateThing", "ThrottlingException")      # the next CreateThing raises
    ctx = fake_context(tmp_path, SCENARIO_YAML, iot)
    await KINDS["create_things"].run(ctx, ctx.scenario.steps[0])
    assert iot.ops() == ["CreateThing", ...]

`FakeSession` records what a device publishes and subscribes to; `deliver(topic, doc)` hands
it a message as the broker would, and `responder` (e.g. `FakeShadowService`) answers publishes.
"""

from __future__ import annotations

import json
import secrets
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from fleetsim.control.journal import Journal, read_entries, settle
from fleetsim.device import DeviceError
from fleetsim.device.behaviours.shadow import merge_state
from fleetsim.engine.context import RunContext
from fleetsim.engine.runner import build_devices
from fleetsim.engine.steps import load_scenario
from fleetsim.metrics import Metrics
from fleetsim.pki.certs import CertificateAuthority, certificate_pem
from fleetsim.pki.keys import generate_key, private_key_pem
from fleetsim.target import Target

ACCOUNT = "123456789012"
REGION = "us-east-1"
_CA: CertificateAuthority | None = None


def _ca() -> CertificateAuthority:
    global _CA
    if _CA is None:
        _CA = CertificateAuthority.create("fake IoT CA")
    return _CA


def client_error(op: str, code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


class _Body:
    """botocore's streaming body, as iot-data's shadow operations return it."""

    def __init__(self, data: bytes):
        self._data = data

    async def read(self) -> bytes:
        return self._data


def _snake_to_op(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


@dataclass
class FakePaginator:
    call: Callable[..., Any]

    async def paginate(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        yield await self.call(**params)


@dataclass
class FakeIot:
    """Answers `iot`, `iot-data` and `sts` calls the way AWS shapes them, from a little
    in-memory registry; every call is recorded as (Operation, params)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    things: dict[str, dict[str, Any]] = field(default_factory=dict)
    certificates: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    principals: dict[str, set[str]] = field(default_factory=dict)
    attached: dict[str, list[str]] = field(default_factory=dict)  # target -> policy names
    shadows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)  # thing group names
    members: dict[str, set[str]] = field(default_factory=dict)  # thing -> its groups
    events: dict[str, Any] = field(default_factory=lambda: {"THING": {"Enabled": False}})
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # by job id, as described
    # job id -> thing -> JobExecutionSummary (status, queuedAt, startedAt, lastUpdatedAt)
    job_executions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    logging_options: dict[str, Any] | None = None  # None: never configured
    logging_levels: dict[tuple[str, str], str] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)  # role -> attached policy ARNs
    log_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by log group
    # package -> {"defaultVersionName"?, "versions": {name: {"status", "attributes"}}}
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    _failures: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def fail(self, op: str, code: str, message: str = "", times: int = 1) -> None:
        """The next `times` calls of `op` (e.g. "CreateThing") raise ClientError `code`."""
        self._failures.setdefault(op, []).extend([(code, message)] * times)

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]

    def get_paginator(self, name: str) -> FakePaginator:
        """One page: the operation's whole answer."""
        return FakePaginator(getattr(self, name))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        op = _snake_to_op(name)
        handler = getattr(self, f"_op_{name}", None)

        async def call(**params: Any) -> Any:
            self.calls.append((op, params))
            failures = self._failures.get(op)
            if failures:
                code, message = failures.pop(0)
                raise client_error(op, code, message)
            if handler is None:
                return {}
            return handler(**params)

        return call

    # --- registry ----------------------------------------------------------------------------

    def _op_get_package(self, packageName: str) -> dict[str, Any]:
        if packageName not in self.packages:
            raise client_error("GetPackage", "ResourceNotFoundException")
        return {"packageName": packageName,
                **{k: v for k, v in self.packages[packageName].items() if k != "versions"}}

    def _op_create_package(self, packageName: str, **_: Any) -> dict[str, Any]:
        if packageName in self.packages:
            raise client_error("CreatePackage", "ConflictException")
        self.packages[packageName] = {"versions": {}}
        return {"packageName": packageName, "packageArn": self._arn("package", packageName)}

    def _version(self, op: str, packageName: str, versionName: str) -> dict[str, Any]:
        try:
            return self.packages[packageName]["versions"][versionName]  # type: ignore
        except KeyError:
            raise client_error(op, "ResourceNotFoundException") from None

    def _op_get_package_version(self, packageName: str, versionName: str) -> dict[str, Any]:
        return {"packageName": packageName, "versionName": versionName,
                **self._version("GetPackageVersion", packageName, versionName)}

    def _op_create_package_version(self, packageName: str, versionName: str,
                                   **params: Any) -> dict[str, Any]:
        if packageName not in self.packages:
            raise client_error("CreatePackageVersion", "ValidationException")
        version = {"status": "DRAFT", "attributes": params.get("attributes", {})}
        self.packages[packageName]["versions"][versionName] = version
        return {"packageName": packageName, "versionName": versionName, **version}

    def _op_update_package_version(self, packageName: str, versionName: str,
                                   **params: Any) -> dict[str, Any]:
        version = self._version("UpdatePackageVersion", packageName, versionName)
        if "attributes" in params:
            version["attributes"] = params["attributes"]
        action = params.get("action")
        if action is not None:
            version["status"] = {"PUBLISH": "PUBLISHED", "DEPRECATE": "DEPRECATED"}[action]
        return {}


    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:iot:{REGION}:{ACCOUNT}:{kind}/{name}"

    def _op_create_thing(self, thingName: str, **params: Any) -> dict[str, Any]:
        if thingName in self.things:
            raise client_error("CreateThing", "ResourceAlreadyExistsException")
        attributes = params.get("attributePayload", {}).get("attributes", {})
        self.things[thingName] = {"thingName": thingName, "attributes": dict(attributes),
                                  "version": 1}
        if params.get("thingTypeName"):
            self.things[thingName]["thingTypeName"] = params["thingTypeName"]
        return {"thingName": thingName, "thingArn": self._arn("thing", thingName),
                "thingId": secrets.token_hex(16)}

    def _op_describe_thing(self, thingName: str) -> dict[str, Any]:
        if thingName not in self.things:
            raise client_error("DescribeThing", "ResourceNotFoundException",
                               f"Thing {thingName} cannot be found.", 404)
        return dict(self.things[thingName])

    def _op_update_thing(self, thingName: str, attributePayload: dict[str, Any],
                         **_: Any) -> dict[str, Any]:
        thing = self.things[thingName]
        if not attributePayload.get("merge"):
            thing["attributes"] = {}
        thing["attributes"].update(attributePayload.get("attributes", {}))
        return {}

    def _op_delete_thing(self, thingName: str) -> dict[str, Any]:
        if self.things.pop(thingName, None) is None:
            raise client_error("DeleteThing", "ResourceNotFoundException")
        return {}

    def _certificate(self, cert_pem: bytes) -> dict[str, Any]:
        cert_id = secrets.token_hex(32)
        arn = self._arn("cert", cert_id)
        self.certificates[cert_id] = {"certificateId": cert_id, "certificateArn": arn,
                                      "status": "ACTIVE"}
        return {"certificateId": cert_id, "certificateArn": arn,
                "certificatePem": cert_pem.decode()}

    def _op_create_keys_and_certificate(self, **_: Any) -> dict[str, Any]:
        key = generate_key("ec-p256")
        cert = _ca().issue_device(key.public_key())  # type: ignore[arg-type]
        out = self._certificate(certificate_pem(cert))
        out["keyPair"] = {"PrivateKey": private_key_pem(key).decode(), "PublicKey": ""}
        return out

    def _op_create_certificate_from_csr(self, certificateSigningRequest: str,
                                        **_: Any) -> dict[str, Any]:
        cert = _ca().issue_for_csr(certificateSigningRequest.encode())
        return self._certificate(certificate_pem(cert))

    def _op_create_policy(self, policyName: str, policyDocument: str) -> dict[str, Any]:
        if policyName in self.policies:
            raise client_error("CreatePolicy", "ResourceAlreadyExistsException")
        self.policies[policyName] = policyDocument
        return {"policyName": policyName, "policyArn": self._arn("policy", policyName),
                "policyDocument": policyDocument, "policyVersionId": "1"}

    def _op_get_policy(self, policyName: str) -> dict[str, Any]:
        if policyName not in self.policies:
            raise client_error("GetPolicy", "ResourceNotFoundException", status=404)
        return {"policyName": policyName, "policyDocument": self.policies[policyName],
                "defaultVersionId": "1"}

    def _op_list_policy_versions(self, policyName: str) -> dict[str, Any]:
        return {"policyVersions": [{"versionId": "1", "isDefaultVersion": True}]}

    def _op_create_policy_version(self, policyName: str, policyDocument: str,
                                  **_: Any) -> dict[str, Any]:
        self.policies[policyName] = policyDocument
        return {"policyVersionId": "2", "isDefaultVersion": True}

    def _op_list_targets_for_policy(self, policyName: str, **_: Any) -> dict[str, Any]:
        if policyName not in self.policies:
            raise client_error("ListTargetsForPolicy", "ResourceNotFoundException",
                               status=404)
        return {"targets": [t for t, names in self.attached.items() if policyName in names]}

    def _op_list_thing_principals(self, thingName: str, **_: Any) -> dict[str, Any]:
        if thingName not in self.things:
            raise client_error("ListThingPrincipals", "ResourceNotFoundException", status=404)
        return {"principals": sorted(self.principals.get(thingName, set()))}

    def _op_attach_thing_principal(self, thingName: str, principal: str) -> dict[str, Any]:
        self.principals.setdefault(thingName, set()).add(principal)
        return {}

    def _op_list_attached_policies(self, target: str) -> dict[str, Any]:
        names = self.attached.get(target, [])
        return {"policies": [{"policyName": n, "policyArn": self._arn("policy", n)}
                             for n in names]}

    def _op_attach_policy(self, policyName: str, target: str) -> dict[str, Any]:
        self.attached.setdefault(target, []).append(policyName)
        return {}

    def _op_detach_policy(self, policyName: str, target: str) -> dict[str, Any]:
        if policyName in self.attached.get(target, []):
            self.attached[target].remove(policyName)
        return {}

    def _op_detach_thing_principal(self, thingName: str, principal: str) -> dict[str, Any]:
        self.principals.get(thingName, set()).discard(principal)
        return {}

    def _op_list_principal_things(self, principal: str) -> dict[str, Any]:
        return {"things": sorted(t for t, ps in self.principals.items() if principal in ps)}

    def _op_list_thing_types(self, **_: Any) -> dict[str, Any]:
        return {"thingTypes": []}

    # --- provisioning by template: the workshop template's shape, not interpreted ------------

    def _op_register_thing(self, templateBody: str, parameters: dict[str, str]
                           ) -> dict[str, Any]:
        """Provisions as templateBody.json does: thing `ThingName`, a certificate for `CSR`
        attached to it, a policy named after the template's hash attached to that."""
        created = self._op_create_certificate_from_csr(parameters["CSR"])
        self._op_create_thing(parameters["ThingName"])
        self._op_attach_thing_principal(parameters["ThingName"], created["certificateArn"])
        policy = f"fake-{abs(hash(templateBody)) % 10**8}"
        self.policies.setdefault(policy, "{}")
        self._op_attach_policy(policy, created["certificateArn"])
        return {"certificatePem": created["certificatePem"], "resourceArns": {
            "thing": self._arn("thing", parameters["ThingName"]),
            "certificate": created["certificateArn"], "policy": self._arn("policy", policy)}}

    # --- jobs (control plane): what CreateJob was given; executions set by the test -------

    def _op_create_job(self, jobId: str, **params: Any) -> dict[str, Any]:
        if jobId in self.jobs:
            raise client_error("CreateJob", "ResourceAlreadyExistsException")
        self.jobs[jobId] = {"jobId": jobId, "status": "IN_PROGRESS", "createdAt": time.time(),
                            "jobProcessDetails": {}, **params}
        return {"jobId": jobId, "jobArn": self._arn("job", jobId)}

    def _op_delete_job(self, jobId: str, **_: Any) -> dict[str, Any]:
        if self.jobs.pop(jobId, None) is None:
            raise client_error("DeleteJob", "ResourceNotFoundException", status=404)
        self.job_executions.pop(jobId, None)
        return {}

    def _op_describe_job(self, jobId: str) -> dict[str, Any]:
        if jobId not in self.jobs:
            raise client_error("DescribeJob", "ResourceNotFoundException", status=404)
        job = dict(self.jobs[jobId])
        statuses = [e["status"] for e in self.job_executions.get(jobId, {}).values()]
        job["jobProcessDetails"] = {
            "numberOfQueuedThings": statuses.count("QUEUED"),
            "numberOfInProgressThings": statuses.count("IN_PROGRESS"),
            "numberOfSucceededThings": statuses.count("SUCCEEDED"),
            "numberOfFailedThings": statuses.count("FAILED")}
        if job["status"] == "IN_PROGRESS" and not {"QUEUED", "IN_PROGRESS"} & set(statuses) \
                and job.get("targetSelection") != "CONTINUOUS":  # which never completes
            job["status"] = "COMPLETED"  # every execution ended (none were still running)
        return {"job": job}

    def _op_list_job_executions_for_job(self, jobId: str, **_: Any) -> dict[str, Any]:
        return {"executionSummaries": [
            {"thingArn": self._arn("thing", thing), "jobExecutionSummary": dict(summary)}
            for thing, summary in self.job_executions.get(jobId, {}).items()]}

    def _op_create_thing_group(self, thingGroupName: str, **_: Any) -> dict[str, Any]:
        self.groups.add(thingGroupName)
        return self._op_describe_thing_group(thingGroupName)

    def _op_add_thing_to_thing_group(self, thingGroupName: str, thingName: str
                                     ) -> dict[str, Any]:
        self.members.setdefault(thingName, set()).add(thingGroupName)
        return {}

    def _op_list_thing_groups_for_thing(self, thingName: str, **_: Any) -> dict[str, Any]:
        return {"thingGroups": [{"groupName": g, "groupArn": self._arn("thinggroup", g)}
                                for g in sorted(self.members.get(thingName, set()))]}

    def _op_describe_thing_group(self, thingGroupName: str) -> dict[str, Any]:
        if thingGroupName not in self.groups:
            raise client_error("DescribeThingGroup", "ResourceNotFoundException", status=404)
        return {"thingGroupName": thingGroupName,
                "thingGroupArn": self._arn("thinggroup", thingGroupName)}

    def _op_describe_event_configurations(self) -> dict[str, Any]:
        return {"eventConfigurations": dict(self.events)}

    def _op_update_event_configurations(self, eventConfigurations: dict[str, Any]
                                        ) -> dict[str, Any]:
        self.events.update(eventConfigurations)
        return {}

    def _op_get_caller_identity(self) -> dict[str, Any]:
        return {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/test", "UserId": "x"}

    # --- AWS IoT logging, IAM roles, CloudWatch Logs ------------------------------------------

    def _op_get_v2_logging_options(self) -> dict[str, Any]:
        if self.logging_options is None:
            raise client_error("GetV2LoggingOptions", "NotConfiguredException", status=404)
        return dict(self.logging_options)

    def _op_set_v2_logging_options(self, **options: Any) -> dict[str, Any]:
        self.logging_options = {**(self.logging_options or {}), **options}
        return {}

    def _op_list_v2_logging_levels(self, **_: Any) -> dict[str, Any]:
        return {"logTargetConfigurations": [
            {"logTarget": {"targetType": t, "targetName": n}, "logLevel": level}
            for (t, n), level in self.logging_levels.items()]}

    def _op_set_v2_logging_level(self, logTarget: dict[str, str], logLevel: str
                                 ) -> dict[str, Any]:
        self.logging_levels[(logTarget["targetType"], logTarget["targetName"])] = logLevel
        return {}

    def _op_delete_v2_logging_level(self, targetType: str, targetName: str) -> dict[str, Any]:
        self.logging_levels.pop((targetType, targetName), None)
        return {}

    def _op_create_role(self, RoleName: str, **_: Any) -> dict[str, Any]:
        if RoleName in self.roles:
            raise client_error("CreateRole", "EntityAlreadyExists", status=409)
        self.roles[RoleName] = []
        return self._op_get_role(RoleName)

    def _op_get_role(self, RoleName: str) -> dict[str, Any]:
        if RoleName not in self.roles:
            raise client_error("GetRole", "NoSuchEntity", status=404)
        return {"Role": {"RoleName": RoleName,
                         "Arn": f"arn:aws:iam::{ACCOUNT}:role/{RoleName}"}}

    def _op_attach_role_policy(self, RoleName: str, PolicyArn: str) -> dict[str, Any]:
        self.roles[RoleName].append(PolicyArn)
        return {}

    def _op_list_attached_role_policies(self, RoleName: str) -> dict[str, Any]:
        return {"AttachedPolicies": [{"PolicyArn": a, "PolicyName": a.rsplit("/", 1)[-1]}
                                     for a in self.roles.get(RoleName, [])]}

    def _op_detach_role_policy(self, RoleName: str, PolicyArn: str) -> dict[str, Any]:
        self.roles[RoleName].remove(PolicyArn)
        return {}

    def _op_list_role_policies(self, RoleName: str) -> dict[str, Any]:
        return {"PolicyNames": []}

    def _op_delete_role(self, RoleName: str) -> dict[str, Any]:
        if self.roles.pop(RoleName, None) is None:
            raise client_error("DeleteRole", "NoSuchEntity", status=404)
        return {}

    def _op_filter_log_events(self, logGroupName: str, startTime: int = 0,
                              filterPattern: str | None = None, **_: Any) -> dict[str, Any]:
        """Events of `log_events[logGroupName]` since `startTime`; a pattern is a JSON
        `{$.field = value}` (enough for tests) or a word the message must hold."""
        if logGroupName not in self.log_events:
            raise client_error("FilterLogEvents", "ResourceNotFoundException")
        events = [e for e in self.log_events[logGroupName] if e["timestamp"] >= startTime]
        if filterPattern:
            field_, _, value = filterPattern.strip("{} ").partition(" = ")
            if field_.startswith("$."):
                events = [e for e in events
                          if str(json.loads(e["message"]).get(field_[2:])) == value]
            else:
                events = [e for e in events if filterPattern in e["message"].split()]
        return {"events": events}

    # --- iot-data: shadows -------------------------------------------------------------------

    def _op_update_thing_shadow(self, thingName: str, payload: bytes,
                                shadowName: str | None = None) -> dict[str, Any]:
        doc = self.shadows.setdefault((thingName, shadowName or ""),
                                      {"state": {}, "version": 0})
        for part, values in json.loads(payload)["state"].items():
            merge_state(doc["state"].setdefault(part, {}), values)
        doc["version"] += 1
        answer = {"state": json.loads(payload)["state"], "version": doc["version"],
                  "timestamp": int(time.time())}
        return {"payload": _Body(json.dumps(answer).encode())}

    def _op_get_thing_shadow(self, thingName: str, shadowName: str | None = None
                             ) -> dict[str, Any]:
        doc = self.shadows.get((thingName, shadowName or ""))
        if doc is None:
            raise client_error("GetThingShadow", "ResourceNotFoundException",
                               f"No shadow exists with name: '{thingName}'", 404)
        state = json.loads(json.dumps(doc["state"]))
        delta = {k: v for k, v in state.get("desired", {}).items()
                 if state.get("reported", {}).get(k) != v}
        if delta:
            state["delta"] = delta
        return {"payload": _Body(json.dumps({"state": state, "version": doc["version"]})
                                 .encode())}

    def _op_delete_thing_shadow(self, thingName: str, shadowName: str | None = None
                                ) -> dict[str, Any]:
        if self.shadows.pop((thingName, shadowName or ""), None) is None:
            raise client_error("DeleteThingShadow", "ResourceNotFoundException")
        return {"payload": _Body(b"{}")}


@dataclass
class FakeMessage:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


Responder = Callable[["FakeSession", str, bytes], None]


class FakeSession:
    """A connected device's session: records publishes and subscriptions; `deliver` hands it
    a message; `responder(session, topic, payload)` is called for each publish (to answer as
    a service would)."""

    def __init__(self, client_id: str = "device", responder: Responder | None = None):
        self.client_id = client_id
        self.published: list[tuple[str, Any, int]] = []  # (topic, parsed JSON payload, qos)
        self.subscriptions: list[str] = []
        self.responder = responder
        self.fail_publish: Exception | None = None
        self.drops = 0  # connections lost through drop()
        # topic or filter -> the DeviceError kind a publish to it / a subscription to it
        # raises, as a broker's denial does ("disconnected_by_server", "suback_refused")
        self.refused: dict[str, str] = {}
        self.policy: object | None = "reconnect"  # a refusal's disconnect is repaired at once
        self.timeout = 10.0
        self._handler: Callable[[Any], None] | None = None

    async def subscribe(self, topic_filter: str, qos: int = 0) -> int:
        if topic_filter in self.refused:
            raise DeviceError(self.refused[topic_filter], topic_filter)
        self.subscriptions.append(topic_filter)
        return qos

    def publish_nowait(self, topic: str, payload: bytes | str | None = None,
                       retain: bool = False) -> None:
        self._record(topic, payload, 0)

    async def publish(self, topic: str, payload: bytes | str | None = None, qos: int = 0,
                      retain: bool = False) -> None:
        self._record(topic, payload, qos)

    def _record(self, topic: str, payload: bytes | str | None, qos: int) -> None:
        if self.fail_publish is not None:
            raise self.fail_publish
        if topic in self.refused:
            if self.refused[topic] == "disconnected_by_server":
                self.drops += 1
            raise DeviceError(self.refused[topic], topic)
        data = payload.encode() if isinstance(payload, str) else (payload or b"")
        try:
            parsed: Any = json.loads(data)
        except ValueError:
            parsed = data
        self.published.append((topic, parsed, qos))
        if self.responder is not None:
            self.responder(self, topic, data)

    def on_message(self, handler: Callable[[Any], None] | None) -> None:
        self._handler = handler

    def deliver(self, topic: str, doc: Any) -> None:
        """A message arrives (a dict is sent as JSON)."""
        assert self._handler is not None, "nothing listens to this session"
        payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self._handler(FakeMessage(topic, payload))

    def close(self) -> bool:
        return True

    def drop(self) -> None:
        """The connection is lost (and, as with a reconnect policy, back at once)."""
        self.drops += 1

    async def wait_connected(self) -> bool:
        return True

    async def __aexit__(self, *exc: object) -> None:
        return None


class FakeShadowService:
    """Answers shadow requests published by `FakeSession`s as the Device Shadow service does
    (accepted with the request's clientToken; a delta when desired and reported differ), over
    the same `FakeIot.shadows` the control plane's `iot-data` calls use."""

    def __init__(self, iot: FakeIot, reject: dict[str, tuple[int, str]] | None = None):
        self.iot = iot
        self.reject = reject or {}  # verb ("update" | "get") -> (code, message)

    def __call__(self, session: FakeSession, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 5 or parts[0] != "$aws" or parts[3] != "shadow":
            return
        thing = parts[2]
        name = parts[5] if len(parts) > 5 and parts[4] == "name" else ""
        verb = parts[-1]
        prefix = "/".join(parts[:-1])
        request = json.loads(payload) if payload else {}
        token = request.get("clientToken")
        if verb in self.reject:
            code, message = self.reject[verb]
            session.deliver(f"{prefix}/{verb}/rejected", {
                "code": code, "message": message, "timestamp": int(time.time()),
                "clientToken": token})
            return
        if verb == "update":
            body = json.dumps({"state": request["state"]}).encode()
            self.iot._op_update_thing_shadow(thing, body, name or None)
            doc = self.iot.shadows[(thing, name)]
            session.deliver(f"{prefix}/update/accepted", {
                "state": request["state"], "version": doc["version"],
                "timestamp": int(time.time()), "clientToken": token})
        elif verb == "get":
            doc = self.iot.shadows.get((thing, name))
            if doc is None:
                session.deliver(f"{prefix}/get/rejected", {
                    "code": 404, "message": f"No shadow exists with name: '{thing}'",
                    "clientToken": token})
                return
            body = json.loads(self.iot._op_get_thing_shadow(thing, name or None)["payload"]._data)
            session.deliver(f"{prefix}/get/accepted", {
                **body, "timestamp": int(time.time()), "clientToken": token})


def fake_context(tmp_path: Path, scenario_yaml: str, iot: FakeIot | None = None,
                 metrics: Metrics | None = None) -> RunContext:
    """A RunContext over `iot` (a FakeIot by default) for the scenario `scenario_yaml`; its
    journal is in `tmp_path/runs/test`."""
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(scenario_yaml))
    scenario = load_scenario(path)
    iot = iot or FakeIot()
    target = Target.local("http://127.0.0.1:1", "127.0.0.1", 8883, tmp_path / "ca.pem")
    runs = tmp_path / "runs"
    described = {"kind": "local"}
    return RunContext("test", scenario, target, iot, iot, iot,
                      Journal.for_run(runs, "test", described, scenario.name),
                      Journal.persistent(runs, scenario.name, described),
                      metrics or Metrics(), tmp_path / "identities",
                      devices=build_devices(scenario), logs=iot, iam=iot)


def journal_kinds(ctx: RunContext) -> list[str]:
    """The kinds of the entries that stand in the run's journal (voided ones cancelled), in
    order (not its header)."""
    return [e.kind for e in settle(read_entries(ctx.journal.run_dir))
            if e.kind not in ("run", "started")]


def connect_fakes(ctx: RunContext, fleet: str, responder: Responder | None = None
                  ) -> list[FakeSession]:
    """Give every device of `fleet` a connected FakeSession."""
    sessions = []
    for d in ctx.devices[fleet]:
        session = FakeSession(d.thing_name, responder)
        d.session = session  # type: ignore[assignment]
        sessions.append(session)
    return sessions
