"""Lambda functions: the registry (create, get, list, update, delete), resource policies
(add-permission, remove-permission, get-policy), and invocations run in local execution
environments (`runner.py`). The only writer of the lambda tables; other features (rules) call
`invoke_as_service`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.functions import names, permissions, settings
from fleetsim.localcore.features.functions.async_queue import Event, EventQueue
from fleetsim.localcore.features.functions.code import CodeStore, check_zip
from fleetsim.localcore.features.functions.logs import LogSink, invocation_lines, tail
from fleetsim.localcore.features.functions.runner import Environment, Outcome, Pool, Spec
from fleetsim.localcore.features.functions.settings import invalid_parameter
from fleetsim.localcore.features.functions.store import FunctionRow, FunctionStore
from fleetsim.localcore.scope import Scope

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024  # "Lambda quotas": invocation payload, synchronous
MAX_ASYNC_PAYLOAD = 1024 * 1024  # ... and asynchronous
MAX_LIST = 50


def not_found(scope: Scope, name: str) -> AwsError:
    return AwsError("ResourceNotFoundException",
                    f"Function not found: {names.function_arn(scope, name)}", Type="User")


def _policy_not_found() -> AwsError:
    return AwsError("ResourceNotFoundException", "The resource you requested does not exist.",
                    Type="User")


class LambdaService:
    def __init__(self, store: FunctionStore, code: CodeStore, sink: LogSink, services: Any,
                 credentials: Callable[[], tuple[str, str]], api_url: Callable[[], str],
                 clock: Callable[[], float] = time.time, pool: Pool | None = None):
        self.store = store
        self.code = code
        self.sink = sink
        self.services = services
        self.credentials = credentials
        self.api_url = api_url
        self.clock = clock
        self.pool = pool or Pool()
        self.events = EventQueue(self._attempt)

    # --- the registry -----------------------------------------------------------------------

    def require(self, scope: Scope, identifier: str, qualifier: str | None = None
                ) -> FunctionRow:
        """The function a name, partial ARN or ARN names ($LATEST is the only version)."""
        fid = names.parse(identifier)
        if fid is None:
            raise invalid_parameter(f"The function name {identifier!r} is not a function "
                                    "name, partial ARN or ARN")
        wanted = qualifier or fid.qualifier
        found = self.store.get(scope.region, fid.name)
        if found is None or (fid.region not in (None, scope.region)) or \
                (fid.account_id not in (None, scope.account_id)):
            raise not_found(scope, fid.name)
        if wanted not in (None, names.LATEST):
            raise AwsError("ResourceNotFoundException", "Function not found: "
                           f"{names.function_arn(scope, fid.name)}:{wanted}", Type="User")
        return found

    def _package(self, params: dict[str, Any]) -> bytes:
        if params.get("ZipFile") is not None:
            data = params["ZipFile"]
            if isinstance(data, str):
                try:
                    data = base64.b64decode(data, validate=True)
                except ValueError:
                    raise invalid_parameter("ZipFile is not valid base64") from None
        elif params.get("S3Bucket") and params.get("S3Key"):
            try:
                s3 = self.services.get("s3")
            except LookupError:
                raise invalid_parameter("Code.S3Bucket needs local core's s3 feature, which "
                                        "is not installed") from None
            try:
                data = s3.read_object(params["S3Bucket"], params["S3Key"])
            except Exception as e:  # S3Error: NoSuchBucket, NoSuchKey
                raise invalid_parameter(
                    f"Error occurred while GetObject. S3 Error Code: "
                    f"{getattr(e, 'code', 'InternalError')}. S3 Error Message: "
                    f"{getattr(e, 'message', e)}") from None
        elif params.get("ImageUri"):
            raise invalid_parameter("local core runs .zip deployment packages only, not "
                                    "container images (ImageUri)")
        else:
            raise invalid_parameter("Please provide a source for function code.")
        check_zip(data)
        return bytes(data)

    def create(self, scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
        fid = names.parse(params["FunctionName"])
        if fid is None or fid.qualifier is not None:
            raise invalid_parameter(f"The function name {params['FunctionName']!r} is not "
                                    "valid for a new function")
        if params.get("PackageType", "Zip") != "Zip":
            raise invalid_parameter("local core runs .zip deployment packages only "
                                    "(PackageType Zip)")
        runtime = params.get("Runtime")
        if not runtime:
            raise invalid_parameter("Runtime and Handler are mandatory parameters for "
                                    "functions created with deployment packages.")
        settings.check_runtime(runtime)
        if not params.get("Handler"):
            raise invalid_parameter("Runtime and Handler are mandatory parameters for "
                                    "functions created with deployment packages.")
        timeout = int(params.get("Timeout") or settings.DEFAULT_TIMEOUT_S)
        settings.check_timeout(timeout)
        env = settings.environment(params) or {}
        if self.store.get(scope.region, fid.name) is not None:
            raise AwsError("ResourceConflictException",
                           f"Function already exist: {fid.name}", Type="User")
        data = self._package(params.get("Code") or {})
        digest = self.code.put(data)
        row = FunctionRow(scope.region, fid.name, runtime, params["Role"], params["Handler"],
                          params.get("Description", ""), timeout,
                          int(params.get("MemorySize") or settings.DEFAULT_MEMORY_MB), env,
                          digest, len(data), self.clock(), str(uuid.uuid4()))
        self.store.save(row)
        return settings.creating(settings.configuration(scope, row))

    def configuration(self, scope: Scope, identifier: str, qualifier: str | None = None
                      ) -> dict[str, Any]:
        return settings.configuration(scope, self.require(scope, identifier, qualifier))

    def code_location(self, f: FunctionRow) -> dict[str, str]:
        return {"RepositoryType": "S3",
                "Location": (self.code.zips / f"{f.code_sha256}.zip").as_uri()}

    def list_functions(self, scope: Scope, marker: str | None, max_items: int | None
             ) -> dict[str, Any]:
        limit = min(max_items or MAX_LIST, MAX_LIST)
        after = ""
        if marker:
            try:
                after = base64.urlsafe_b64decode(marker.encode()).decode()
            except ValueError:
                raise invalid_parameter("The marker is not valid") from None
        rows = self.store.page(scope.region, after, limit)
        out: dict[str, Any] = {"Functions": [settings.configuration(scope, r)
                                             for r in rows[:limit]]}
        if len(rows) > limit:
            out["NextMarker"] = base64.urlsafe_b64encode(rows[limit - 1].name.encode()).decode()
        return out

    def _check_revision(self, f: FunctionRow, revision_id: str | None) -> None:
        if revision_id and revision_id != f.revision_id:
            raise AwsError("PreconditionFailedException", "The Revision Id provided does not "
                           "match the latest Revision Id. Call the GetFunction/GetAlias API to "
                           "retrieve the latest Revision Id", Type="User")

    def _changed(self, scope: Scope, old: FunctionRow, new: FunctionRow) -> dict[str, Any]:
        new = replace(new, last_modified=self.clock(), revision_id=str(uuid.uuid4()))
        self.store.save(new)
        self.pool.retire((scope.region, old.name))
        if old.code_sha256 != new.code_sha256 and not self.store.code_in_use(old.code_sha256):
            self.code.remove(old.code_sha256)
        return settings.updating(settings.configuration(scope, new))

    def update_code(self, scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
        f = self.require(scope, params["FunctionName"])
        self._check_revision(f, params.get("RevisionId"))
        data = self._package(params)
        if params.get("DryRun"):
            return settings.configuration(scope, f)
        digest = self.code.put(data)
        return self._changed(scope, f, replace(f, code_sha256=digest, code_size=len(data)))

    def update_configuration(self, scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
        f = self.require(scope, params["FunctionName"])
        self._check_revision(f, params.get("RevisionId"))
        changes: dict[str, Any] = {}
        if params.get("Runtime"):
            settings.check_runtime(params["Runtime"])
            changes["runtime"] = params["Runtime"]
        if params.get("Timeout") is not None:
            settings.check_timeout(int(params["Timeout"]))
            changes["timeout"] = int(params["Timeout"])
        env = settings.environment(params)
        if env is not None:
            changes["environment"] = env
        for member, column in (("Role", "role"), ("Handler", "handler"),
                               ("Description", "description"), ("MemorySize", "memory_size")):
            if params.get(member) is not None:
                changes[column] = params[member]
        return self._changed(scope, f, replace(f, **changes))

    def delete(self, scope: Scope, identifier: str, qualifier: str | None) -> None:
        f = self.require(scope, identifier, qualifier)
        self.store.delete(scope.region, f.name)
        self.pool.retire((scope.region, f.name))
        if not self.store.code_in_use(f.code_sha256):
            self.code.remove(f.code_sha256)

    # --- resource policies ------------------------------------------------------------------

    def add_permission(self, scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
        f = self.require(scope, params["FunctionName"], params.get("Qualifier"))
        self._check_revision(f, params.get("RevisionId"))
        for unsupported in ("PrincipalOrgID", "EventSourceToken", "FunctionUrlAuthType"):
            if params.get(unsupported):
                raise invalid_parameter(f"local core does not support {unsupported} in "
                                        "add-permission")
        statement = permissions.statement(
            params["StatementId"], params["Action"], params["Principal"],
            names.function_arn(scope, f.name), params.get("SourceArn"),
            params.get("SourceAccount"))
        if not self.store.add_statement(scope.region, f.name, params["StatementId"],
                                        statement):
            raise AwsError("ResourceConflictException",
                           f"The statement id ({params['StatementId']}) provided already "
                           "exists. Please provide a new statement id, or remove the existing "
                           "statement.", Type="User")
        return {"Statement": json.dumps(statement, separators=(",", ":"))}

    def remove_permission(self, scope: Scope, identifier: str, sid: str,
                          qualifier: str | None) -> None:
        f = self.require(scope, identifier, qualifier)
        if not self.store.remove_statement(scope.region, f.name, sid):
            raise AwsError("ResourceNotFoundException", f"Statement {sid} is not found in "
                           "resource policy.", Type="User")

    def policy(self, scope: Scope, identifier: str, qualifier: str | None) -> dict[str, Any]:
        f = self.require(scope, identifier, qualifier)
        statements = self.store.statements(scope.region, f.name)
        if not statements:
            raise _policy_not_found()
        return {"Policy": permissions.policy_document(statements),
                "RevisionId": f.revision_id}

    # --- invocation -------------------------------------------------------------------------

    def _spec(self, scope: Scope, f: FunctionRow, stream: str) -> Spec:
        task_dir = self.code.task_dir(f.code_sha256)
        key, secret = self.credentials()
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "en_US.UTF-8", "TZ": ":UTC", "PYTHONPATH": str(task_dir),
            "LAMBDA_TASK_ROOT": str(task_dir),
            "LAMBDA_RUNTIME_DIR": str(Path(__file__).parent),
            "_HANDLER": f.handler, "AWS_REGION": scope.region,
            "AWS_DEFAULT_REGION": scope.region, "AWS_EXECUTION_ENV": f"AWS_Lambda_{f.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": f.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(f.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": names.LATEST,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": names.log_group(f.name),
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
            # boto3 inside the function talks to local core
            "AWS_ENDPOINT_URL": self.api_url(),
        }
        return Spec(task_dir, env | f.environment, f.code_sha256 + f.revision_id)

    async def run(self, scope: Scope, f: FunctionRow, event: bytes
                  ) -> tuple[Outcome, list[tuple[int, str]]]:
        """One invocation in a warm or new environment; its outcome and its log lines."""
        key = (scope.region, f.name)

        async def start() -> Environment:
            stream = names.log_stream(self.clock())
            return await Environment.start(self._spec(scope, f, stream), stream)

        env = await self.pool.acquire(key, f.code_sha256 + f.revision_id, start)
        request_id = str(uuid.uuid4())
        started_ms = int(self.clock() * 1000)
        init_ms, init_output = env.init_ms, env.init_output
        env.init_ms, env.init_output = None, []
        try:
            if env.init_error is not None:
                error = env.init_error | {"requestId": request_id}
                outcome = Outcome(False, json.dumps(error).encode(), [], 0.0, 0)
            else:
                timeout_s = float(f.timeout)
                outcome = await env.invoke({
                    "id": request_id, "arn": names.function_arn(scope, f.name),
                    "deadline_ms": started_ms + int(timeout_s * 1000),
                    "event": event.decode() if event.strip() else "{}",
                    "trace": f"Root=1-{int(self.clock()):08x}-{uuid.uuid4().hex[:24]};"
                             "Parent=0000000000000000;Sampled=0"}, timeout_s)
        finally:
            await self.pool.release(key, env)
        lines = invocation_lines(request_id, started_ms, outcome, f.memory_size, init_ms,
                                 init_output)
        self.sink.deliver(scope.region, names.log_group(f.name), env.stream, lines)
        return outcome, lines

    @staticmethod
    def _check_payload(payload: bytes, limit: int) -> None:
        if len(payload) > limit:
            raise AwsError("RequestTooLargeException", f"Request must be smaller than {limit} "
                           "bytes for the InvokeFunction operation", status=413, Type="User")
        if payload.strip():
            try:
                json.loads(payload)
            except ValueError as e:
                raise AwsError("InvalidRequestContentException", "Could not parse request "
                               f"body into json: {e}", status=400, Type="User") from None

    async def invoke(self, scope: Scope, identifier: str, payload: bytes,
                     invocation_type: str, log_type: str | None, qualifier: str | None
                     ) -> dict[str, Any]:
        f = self.require(scope, identifier, qualifier)
        if invocation_type == "DryRun":
            return {"StatusCode": 204}
        if invocation_type == "Event":
            self._check_payload(payload, MAX_ASYNC_PAYLOAD)
            self.events.put(Event(scope, f.name, payload))
            return {"StatusCode": 202}
        self._check_payload(payload, MAX_SYNC_PAYLOAD)
        outcome, lines = await self.run(scope, f, payload)
        out: dict[str, Any] = {"StatusCode": 200, "Payload": outcome.body,
                               "ExecutedVersion": names.LATEST}
        if not outcome.ok:
            out["FunctionError"] = "Unhandled"
        if log_type == "Tail":
            out["LogResult"] = tail(lines)
        return out

    async def _attempt(self, event: Event) -> bool:
        f = self.store.get(event.scope.region, event.name)
        if f is None:
            raise LookupError(event.name)
        outcome, _ = await self.run(event.scope, f, event.payload)
        return outcome.ok

    async def invoke_as_service(self, scope: Scope, function_arn: str, payload: bytes, *,
                                principal: str, source_arn: str, source_account: str) -> None:
        """The contract with other features (a rule's lambda action): AccessDeniedException
        unless the function's resource policy lets `principal` invoke it for this source;
        otherwise an asynchronous invocation is queued."""
        f = self.require(scope, function_arn)
        statements = self.store.statements(scope.region, f.name)
        if not permissions.allows(statements, principal, source_arn, source_account):
            raise AwsError("AccessDeniedException",
                           f"{principal} is not authorized to perform: lambda:InvokeFunction "
                           f"on resource: {names.function_arn(scope, f.name)} because no "
                           "resource-based policy allows the lambda:InvokeFunction action",
                           status=403)
        self._check_payload(payload, MAX_ASYNC_PAYLOAD)
        self.events.put(Event(scope, f.name, payload))

    async def drain(self) -> None:
        """Wait for queued asynchronous invocations (tests, shutdown)."""
        await self.events.join()
        await asyncio.sleep(0)

    async def close(self) -> None:
        self.events.close()
        await self.pool.close()
