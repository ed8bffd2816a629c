"""IoT Jobs: the control plane (jobs, executions, templates), the device side (get, start-next,
describe, update, shared by MQTT and HTTP), and what runs on timers (rollout, scheduled start
and end, execution timeouts), with the rules of the AWS IoT developer guide's "Jobs" chapter.
The only writer of the jobs tables.

Every change to a thing's executions publishes `$aws/things/<thing>/jobs/notify` and, when the
next pending execution changed, `notify-next` ("Jobs notifications"), as ordinary messages
through the broker, for the region the broker serves. Timers live in the database (rollout
state, deadlines) and are re-armed by `resume` when local core starts.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError, already_exists, found, invalid, not_found
from fleetsim.localcore.features.jobs import criteria, payloads, rollout
from fleetsim.localcore.features.jobs import states as st
from fleetsim.localcore.features.jobs.announcements import (
    JobEventOccurred,
    JobExecutionEventOccurred,
)
from fleetsim.localcore.features.jobs.document import (
    PLACEHOLDER,
    DocumentError,
    check_document,
    s3_location,
    substitute,
)
from fleetsim.localcore.features.jobs.records import ExecutionRecord, JobRecord, TemplateRecord
from fleetsim.localcore.features.jobs.store import JobsStore
from fleetsim.localcore.features.jobs.timers import Timers
from fleetsim.localcore.scope import Scope

CONFIG_KEYS = ("presignedUrlConfig", "jobExecutionsRolloutConfig", "abortConfig",
               "timeoutConfig", "jobExecutionsRetryConfig", "schedulingConfig")
TEMPLATE_KEYS = CONFIG_KEYS[:5]
DEFAULT_LINK_SECONDS = 3600  # presignedUrlConfig.expiresInSec's default


class DeviceError(Exception):
    """A Jobs device API error: `code` as the MQTT error response names it (ResourceNotFound,
    InvalidStateTransition, VersionMismatch, InvalidRequest, TerminalStateReached)."""

    def __init__(self, code: str, message: str, execution: ExecutionRecord | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.execution = execution


@dataclass(frozen=True, slots=True)
class Update:
    """An UpdateJobExecution request, as both data planes carry it."""

    status: object
    status_details: dict[str, str] | None = None
    expected_version: int | None = None
    execution_number: int | None = None
    step_timeout: int | None = None


def _now_iso_epoch(text: str, where: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"{where} {text!r} is not a date and time (yyyy-MM-ddTHH:mm).") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _scope_of(job: JobRecord) -> Scope:
    parts = job.arn.split(":")  # arn:aws:iot:REGION:ACCOUNT:job/ID
    return Scope(parts[4], parts[3])


def _details(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise DeviceError("InvalidRequest", f"{where} must be a map of strings to strings.")
    for k, v in value.items():
        if not 1 <= len(k) <= 128 or len(v) > 1024:
            raise DeviceError("InvalidRequest", f"{where}: keys have 1 to 128 characters and "
                              "values at most 1024.")
    return dict(value)


class JobsService:
    def __init__(self, db: Database, services: Any, broker_region: str,
                 publish: Callable[[str, bytes], None], announce: Callable[[object], None],
                 api_url: Callable[[], str], clock: Callable[[], float] = time.time,
                 minute: float = 60.0):
        self._db = db
        self._store = JobsStore(db)
        self._services = services  # looked up at use: registry, s3
        self._region = broker_region
        self._publish = publish
        self._announce = announce
        self._api_url = api_url
        self._clock = clock
        self._minute = minute  # seconds a minute of rates and timeouts lasts (60; less in tests)
        self._next_sent: dict[tuple[str, str], tuple[str, str] | None] = {}
        self.timers = Timers(clock, self._fire)

    def now(self) -> float:
        return self._clock()

    # --- start -------------------------------------------------------------------------------

    def resume(self) -> None:
        """Re-arm every timer kept in the database (after a restart)."""
        for job in self._store.jobs_in(st.JOB_SCHEDULED, st.JOB_IN_PROGRESS):
            self._arm_job(job)
        for e in self._store.timed():
            if e.timeout_at is not None:
                self.timers.arm(("exec", e.region, e.job_id, e.thing_name), e.timeout_at)

    def _arm_job(self, job: JobRecord) -> None:
        scheduling = job.option("schedulingConfig") or {}
        if job.status == st.JOB_SCHEDULED and scheduling.get("startTime"):
            self.timers.arm(("start", job.region, job.job_id),
                            _now_iso_epoch(scheduling["startTime"], "startTime"))
        if scheduling.get("endTime"):
            self.timers.arm(("end", job.region, job.job_id),
                            _now_iso_epoch(scheduling["endTime"], "endTime"))
        if job.status == st.JOB_IN_PROGRESS and job.targets_waiting:
            self.timers.arm(("rollout", job.region, job.job_id), self._clock())

    def _fire(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        kind, region, job_id, *rest = key
        job = self._store.job(region, job_id)
        if job is None:
            return
        if kind == "rollout":
            self._roll(job)
        elif kind == "start" and job.status == st.JOB_SCHEDULED:
            self._begin(job)
        elif kind == "end":
            self._end(job)
        elif kind == "exec":
            self._time_out(job, rest[0])

    # --- lookups -----------------------------------------------------------------------------

    @property
    def _registry(self) -> Any:
        return self._services.registry

    def require_job(self, scope: Scope, job_id: str) -> JobRecord:
        return found(self._store.job(scope.region, job_id),
                     f"Job {job_id} does not exist.")

    def _require_execution(self, scope: Scope, job_id: str, thing: str) -> ExecutionRecord:
        return found(self._store.execution(scope.region, job_id, thing),
                     f"Job execution of job {job_id} on thing {thing} does not exist.")

    def counts(self, job: JobRecord) -> dict[str, int]:
        return self._store.counts(job.region, job.job_id)

    # --- the document ------------------------------------------------------------------------

    def _presign(self, region: str, seconds: int) -> Callable[[str, str], str]:
        try:
            s3 = self._services.get("s3")
        except LookupError:
            raise invalid("The job document names S3 objects, but local core's s3 feature is "
                          "not installed.") from None

        def presign(bucket: str, key: str) -> str:
            return str(s3.presigned_get(self._api_url(), region, bucket, key, seconds))
        return presign

    def document_for_device(self, job: JobRecord) -> str:
        """The job document with a fresh presigned URL for each placeholder."""
        if PLACEHOLDER.search(job.document) is None:
            return job.document
        cfg = job.option("presignedUrlConfig") or {}
        seconds = int(cfg.get("expiresInSec") or DEFAULT_LINK_SECONDS)
        return substitute(job.document, self._presign(job.region, seconds))

    def _read_source(self, source: str) -> str:
        try:
            bucket, key = s3_location(source)
        except DocumentError as e:
            raise invalid(f"documentSource: {e}.") from None
        try:
            s3 = self._services.get("s3")
        except LookupError:
            raise invalid("documentSource needs local core's s3 feature, which is not "
                          "installed.") from None
        try:
            data: bytes = s3.read_object(bucket, key)
        except AwsError:
            raise invalid(f"The job document {source} cannot be read: no object {key} in "
                          f"bucket {bucket}.") from None
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise invalid(f"The job document {source} is not UTF-8 text.") from None

    def _document(self, document: str | None, source: str | None) -> str:
        if document is not None and source is not None:
            raise invalid("Specify either document or documentSource, not both.")
        text = document if document is not None else self._read_source(source or "")
        try:
            return check_document(text)
        except DocumentError as e:
            raise invalid(str(e)) from None

    # --- jobs (control plane) ----------------------------------------------------------------

    def _resolve_targets(self, scope: Scope, targets: list[str]) -> list[str]:
        """The things the target ARNs name, each once: things, and the members of thing groups
        and of their descendants."""
        things: dict[str, None] = {}
        for arn in targets:
            parts = arn.split(":", 5)
            kind, _, name = parts[5].partition("/") if len(parts) == 6 else ("", "", "")
            if len(parts) != 6 or parts[3] != scope.region or not name or \
                    kind not in ("thing", "thinggroup"):
                raise invalid(f"Target {arn} is not a thing or thing group ARN of this region.")
            if kind == "thing":
                self._registry.require_thing(scope, name)
                things[name] = None
                continue
            after = ""
            while True:
                page, after = self._registry.things_in_group(scope, name, True, after, 250)
                things.update(dict.fromkeys(page))
                if not after:
                    break
        return list(things)

    def create_job(self, scope: Scope, p: dict[str, Any]) -> JobRecord:
        job_id = p["jobId"]
        if self._store.job(scope.region, job_id) is not None:
            raise already_exists(f"Job {job_id} already exists.", job_id,
                                 scope.arn("job", job_id))
        config = {k: p[k] for k in CONFIG_KEYS if p.get(k) is not None}
        document, source = p.get("document"), p.get("documentSource")
        template_arn = p.get("jobTemplateArn")
        if template_arn:
            template = self._template_of_arn(scope, template_arn)
            config = {k: template.config[k] for k in TEMPLATE_KEYS if k in template.config} \
                | config
            if document is None and source is None:
                document, source = template.document, template.document_source
        if document is None and source is None:
            raise invalid("A job needs a document, a documentSource or a jobTemplateArn.")
        text = self._document(document, source)
        self._check_config(config)
        targets = list(dict.fromkeys(p["targets"]))
        things = self._resolve_targets(scope, targets)
        now = self._clock()
        scheduled = bool((config.get("schedulingConfig") or {}).get("startTime"))
        job = JobRecord(
            scope.region, job_id, 0, scope.arn("job", job_id),
            st.JOB_SCHEDULED if scheduled else st.JOB_IN_PROGRESS,
            p.get("targetSelection") or "SNAPSHOT", targets, p.get("description"), text,
            source, config, template_arn, list(p.get("tags") or []), None, None, False, now,
            now, None, None)
        with self._db.transaction():
            self._store.insert_job(job)
            job.targets_waiting = self._store.add_targets(scope.region, job_id, things) > 0
        self._arm_job(job)
        if not scheduled:
            self._begin(job)
        return job

    def _check_config(self, config: dict[str, Any]) -> None:
        retry = config.get("jobExecutionsRetryConfig") or {}
        total = sum(int(c.get("numberOfRetries", 0)) for c in retry.get("criteriaList") or ())
        if total > criteria.MAX_RETRIES:
            raise invalid(f"jobExecutionsRetryConfig allows {total} retries in all: at most "
                          f"{criteria.MAX_RETRIES} are allowed.")
        timeout = (config.get("timeoutConfig") or {}).get("inProgressTimeoutInMinutes")
        if timeout is not None and not \
                criteria.MIN_TIMEOUT_MIN <= timeout <= criteria.MAX_TIMEOUT_MIN:
            raise invalid("timeoutConfig.inProgressTimeoutInMinutes must be between 1 and "
                          "10080 (1 minute to 7 days).")
        scheduling = config.get("schedulingConfig") or {}
        start = scheduling.get("startTime")
        end = scheduling.get("endTime")
        if end and start and _now_iso_epoch(end, "endTime") <= \
                _now_iso_epoch(start, "startTime"):
            raise invalid("schedulingConfig.endTime must be after its startTime.")

    def _begin(self, job: JobRecord) -> None:
        """Start the rollout: the job goes IN_PROGRESS and its first executions are queued."""
        now = self._clock()
        job.status = st.JOB_IN_PROGRESS
        job.rollout_state = rollout.start(self._rollout_config(job), now).to_wire()
        job.updated = now
        with self._db.transaction():
            self._store.save_job(job)
        self._roll(job)

    def _rollout_config(self, job: JobRecord) -> rollout.RolloutConfig:
        return rollout.RolloutConfig.of(job.option("jobExecutionsRolloutConfig"))

    def _roll(self, job: JobRecord) -> None:
        """Queue the executions the rollout rate allows now, and arm the next tick."""
        if job.status != st.JOB_IN_PROGRESS or not job.targets_waiting:
            return
        config = self._rollout_config(job)
        now = self._clock()
        state = rollout.RolloutState.from_wire(job.rollout_state or
                                               rollout.start(config, now).to_wire())
        counts = self.counts(job) if config.base_per_minute is not None else {}
        count, state = rollout.due(config, state, now, sum(counts.values()),
                                   counts.get(st.SUCCEEDED, 0), self._minute)
        queued: list[ExecutionRecord] = []
        with self._db.transaction():
            for thing in self._store.take_targets(job.region, job.job_id, count):
                e = self._new_execution(job, thing, now)
                if e is not None:
                    queued.append(e)
            job.rollout_state = state.to_wire()
            self._store.save_job(job)
        job.targets_waiting = self._store.has_targets(job.region, job.job_id)
        for e in queued:
            self._notify(job.region, e.thing_name)
        if job.targets_waiting:
            self.timers.arm(("rollout", job.region, job.job_id),
                            rollout.next_at(config, state, self._minute))
        else:
            self._maybe_complete(job)

    def _new_execution(self, job: JobRecord, thing: str, now: float) -> ExecutionRecord | None:
        existing = self._store.execution(job.region, job.job_id, thing)
        if existing is not None:
            return None
        e = ExecutionRecord(job.region, job.job_id, thing, 1, st.QUEUED, {}, now, None, now, 1,
                            0, None, None, None, False, 0)
        self._store.save_execution(e)
        return e

    def describe_job(self, scope: Scope, job_id: str) -> tuple[JobRecord, dict[str, int]]:
        job = self.require_job(scope, job_id)
        return job, self.counts(job)

    def list_jobs(self, scope: Scope, after: int, limit: int, status: str | None,
                  target_selection: str | None, group: str | None
                  ) -> tuple[list[JobRecord], int | None]:
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if target_selection:
            where.append("target_selection = ?")
            args.append(target_selection)
        out: list[JobRecord] = []
        group_arn = scope.arn("thinggroup", group) if group else None
        while len(out) <= limit:
            page = self._store.jobs(scope.region, after, 250, where, args)
            if not page:
                break
            after = page[-1].seq
            out.extend(j for j in page if group_arn is None or group_arn in j.targets)
        return out[:limit], (out[limit - 1].seq if len(out) > limit else None)

    def update_job(self, scope: Scope, job_id: str, p: dict[str, Any]) -> None:
        job = self.require_job(scope, job_id)
        if job.status not in (st.JOB_IN_PROGRESS, st.JOB_SCHEDULED):
            raise invalid(f"Job {job_id} is {job.status}: only a job in progress or scheduled "
                          "can be updated.")
        changes = {k: p[k] for k in CONFIG_KEYS[:5] if p.get(k) is not None}
        config = job.config | changes
        self._check_config(config)
        job.config = config
        if p.get("description") is not None:
            job.description = p["description"]
        job.updated = self._clock()
        with self._db.transaction():
            self._store.save_job(job)
        if "jobExecutionsRolloutConfig" in changes and job.targets_waiting:
            self.timers.arm(("rollout", job.region, job.job_id), self._clock())

    def cancel_job(self, scope: Scope, job_id: str, force: bool, reason_code: str | None,
                   comment: str | None) -> JobRecord:
        job = self.require_job(scope, job_id)
        if job.status == st.JOB_COMPLETED:
            raise invalid(f"Job {job_id} is COMPLETED and cannot be canceled.")
        if job.status == st.JOB_CANCELED and not (force and not job.force_canceled):
            return job
        self._cancel(job, force, reason_code, comment)
        return job

    def _cancel(self, job: JobRecord, force: bool, reason_code: str | None,
                comment: str | None) -> None:
        """Cancel the job: QUEUED executions are canceled, IN_PROGRESS ones too if `force`
        ("Job and job execution states"); targets not yet notified never are."""
        now = self._clock()
        job.status, job.updated = st.JOB_CANCELED, now
        job.force_canceled = job.force_canceled or force
        job.reason_code = reason_code if reason_code is not None else job.reason_code
        job.comment = comment if comment is not None else job.comment
        statuses = (st.QUEUED, st.IN_PROGRESS) if force else (st.QUEUED,)
        changed: list[ExecutionRecord] = []
        with self._db.transaction():
            self._store.drop_targets(job.region, job.job_id)
            job.targets_waiting = False
            self._store.save_job(job)
            after = 0
            while page := self._store.executions_of_job(job.region, job.job_id, after, 500):
                after = page[-1].seq
                for e in page:
                    if e.status in statuses:
                        self._set_status(e, st.CANCELED, now, force_canceled=force)
                        changed.append(e)
        self.timers.cancel(("rollout", job.region, job.job_id))
        self._job_event(job, "canceled")
        for e in changed:
            self._after_change(job, e, notify_only=True)

    def delete_job(self, scope: Scope, job_id: str, force: bool) -> None:
        job = self.require_job(scope, job_id)
        counts = self.counts(job)
        if job.status == st.JOB_IN_PROGRESS and not force:
            raise AwsError("InvalidStateTransitionException",
                           f"Job {job_id} is IN_PROGRESS: cancel it first, or delete it with "
                           "force.")
        if counts.get(st.IN_PROGRESS) and not force:
            raise AwsError("InvalidStateTransitionException",
                           f"Job {job_id} has job executions IN_PROGRESS: delete it with force.")
        things = [e.thing_name for e in self._all_executions(job) if e.status in st.PENDING]
        with self._db.transaction():
            self._store.delete_job(job.region, job.job_id)
        for key in ("rollout", "start", "end"):
            self.timers.cancel((key, job.region, job.job_id))
        self._job_event(job, "deleted")
        for thing in things:
            self._notify(job.region, thing)

    def _all_executions(self, job: JobRecord) -> list[ExecutionRecord]:
        out: list[ExecutionRecord] = []
        after = 0
        while page := self._store.executions_of_job(job.region, job.job_id, after, 1000):
            out.extend(page)
            after = page[-1].seq
        return out

    def get_job_document(self, scope: Scope, job_id: str, before_substitution: bool) -> str:
        job = self.require_job(scope, job_id)
        return job.document if before_substitution else self.document_for_device(job)

    def _end(self, job: JobRecord) -> None:
        """schedulingConfig.endTime reached: STOP_ROLLOUT (the default) stops notifying
        targets; CANCEL and FORCE_CANCEL cancel the job."""
        if job.status not in (st.JOB_IN_PROGRESS, st.JOB_SCHEDULED):
            return
        behavior = (job.option("schedulingConfig") or {}).get("endBehavior") or "STOP_ROLLOUT"
        if behavior == "STOP_ROLLOUT":
            with self._db.transaction():
                self._store.drop_targets(job.region, job.job_id)
            job.targets_waiting = False
            if job.status == st.JOB_SCHEDULED:
                job.status = st.JOB_IN_PROGRESS
            self._maybe_complete(job)
        else:
            self._cancel(job, behavior == "FORCE_CANCEL", None, None)

    def _maybe_complete(self, job: JobRecord) -> None:
        """A SNAPSHOT job is COMPLETED once every target was notified and every execution is
        terminal; a CONTINUOUS job runs on until canceled."""
        if job.target_selection != "SNAPSHOT" or job.status != st.JOB_IN_PROGRESS or \
                self._store.has_targets(job.region, job.job_id) or \
                self._store.has_pending_execution(job.region, job.job_id):
            return
        counts = self.counts(job)
        now = self._clock()
        job.status, job.completed, job.updated = st.JOB_COMPLETED, now, now
        with self._db.transaction():
            self._store.save_job(job)
        self.timers.cancel(("end", job.region, job.job_id))
        self._job_event(job, "completed", counts)

    def _job_event(self, job: JobRecord, operation: str,
                   counts: dict[str, int] | None = None) -> None:
        counts = counts if counts is not None else self.counts(job)
        ms = lambda t: None if t is None else int(t * 1000)  # noqa: E731
        fields = {"status": job.status, "targetSelection": job.target_selection,
                  "targets": list(job.targets), "description": job.description,
                  "createdAt": ms(job.created), "lastUpdatedAt": ms(job.updated),
                  "completedAt": ms(job.completed),
                  "jobProcessDetails": st.process_details(counts)}
        if job.status == st.JOB_CANCELED:
            fields["forceCanceled"] = job.force_canceled
            fields["comment"] = job.comment
        self._announce(JobEventOccurred(_scope_of(job), operation, job.job_id,
                                        {k: v for k, v in fields.items() if v is not None}))

    # --- continuous jobs ---------------------------------------------------------------------

    def thing_added(self, scope: Scope, thing: str) -> None:
        """A thing joined a group: every CONTINUOUS job in progress that targets one of its
        groups (or their ancestors) gets an execution on it at once."""
        jobs = [j for j in self._store.jobs_in(st.JOB_IN_PROGRESS)
                if j.region == scope.region and j.target_selection == "CONTINUOUS"]
        if not jobs:
            return
        groups = {scope.arn("thinggroup", g)
                  for g in self._registry.group_chain_of_thing(scope, thing)}
        now = self._clock()
        for job in jobs:
            if groups.isdisjoint(job.targets):
                continue
            with self._db.transaction():
                e = self._new_execution(job, thing, now)
            if e is not None:
                self._notify(job.region, thing)

    def thing_removed(self, scope: Scope, thing: str) -> None:
        """A thing left a group: its pending executions of CONTINUOUS jobs that no longer
        target it become REMOVED."""
        groups = {scope.arn("thinggroup", g)
                  for g in self._registry.group_chain_of_thing(scope, thing)}
        thing_arn = scope.arn("thing", thing)
        now = self._clock()
        for e in self._store.executions_of_thing(scope.region, thing, tuple(st.PENDING)):
            job = self._store.job(scope.region, e.job_id)
            if job is None or job.target_selection != "CONTINUOUS" or thing_arn in job.targets \
                    or not groups.isdisjoint(job.targets):
                continue
            with self._db.transaction():
                self._set_status(e, st.REMOVED, now)
            self._after_change(job, e)

    # --- executions (control plane) ----------------------------------------------------------

    def describe_execution(self, scope: Scope, job_id: str, thing: str,
                           number: int | None) -> ExecutionRecord:
        e = self._require_execution(scope, job_id, thing)
        if number is not None and number != e.execution_number:
            raise not_found(f"Job execution number {number} of job {job_id} on thing {thing} "
                            "does not exist.")
        return e

    def executions_for_job(self, scope: Scope, job_id: str, status: str | None, after: int,
                           limit: int) -> list[ExecutionRecord]:
        self.require_job(scope, job_id)
        return self._store.executions_of_job(scope.region, job_id, after, limit, status)

    def executions_for_thing(self, scope: Scope, thing: str, status: str | None,
                             job_id: str | None) -> list[ExecutionRecord]:
        out = self._store.executions_of_thing(scope.region, thing, (status,) if status else ())
        return [e for e in out if job_id is None or e.job_id == job_id]

    def cancel_execution(self, scope: Scope, job_id: str, thing: str, force: bool,
                         expected_version: int | None, details: dict[str, str] | None) -> None:
        job = self.require_job(scope, job_id)
        e = self._require_execution(scope, job_id, thing)
        if e.status in st.TERMINAL:
            raise AwsError("InvalidStateTransitionException",
                           f"The job execution is {e.status} and cannot be canceled.")
        if e.status == st.IN_PROGRESS and not force:
            raise AwsError("InvalidStateTransitionException",
                           "The job execution is IN_PROGRESS: cancel it with force.")
        if expected_version is not None and expected_version != e.version:
            raise AwsError("VersionConflictException",
                           f"The expected version {expected_version} does not match the job "
                           f"execution's version {e.version}.")
        with self._db.transaction():
            if details:
                e.status_details = {**e.status_details, **details}
            self._set_status(e, st.CANCELED, self._clock(), force_canceled=force)
        self._after_change(job, e)

    def delete_execution(self, scope: Scope, job_id: str, thing: str, number: int,
                         force: bool) -> None:
        e = self.describe_execution(scope, job_id, thing, number)
        if e.status not in st.TERMINAL and not force:
            raise AwsError("InvalidStateTransitionException",
                           f"The job execution is {e.status}: only a job execution in a "
                           "terminal state can be deleted without force.")
        with self._db.transaction():
            self._store.delete_execution(scope.region, job_id, thing)
        self.timers.cancel(("exec", scope.region, job_id, thing))
        self._announce(JobExecutionEventOccurred(scope, "deleted", job_id,
                                                 scope.arn("thing", thing), e.status,
                                                 e.status_details))
        self._notify(scope.region, thing)

    # --- device side (MQTT and HTTP) ---------------------------------------------------------

    def pending(self, region: str, thing: str) -> tuple[list[ExecutionRecord],
                                                        list[ExecutionRecord]]:
        return payloads.pending_lists(
            self._store.executions_of_thing(region, thing, tuple(st.PENDING)))

    def next_pending(self, region: str, thing: str) -> ExecutionRecord | None:
        return payloads.next_pending(
            self._store.executions_of_thing(region, thing, tuple(st.PENDING)))

    def job_of(self, e: ExecutionRecord) -> JobRecord:
        job = self._store.job(e.region, e.job_id)
        if job is None:
            raise DeviceError("ResourceNotFound", f"Job {e.job_id} does not exist.")
        return job

    def device_describe(self, region: str, thing: str, job_id: str,
                        number: int | None) -> ExecutionRecord | None:
        """DescribeJobExecution; `$next` names the next pending execution (None if there is
        none)."""
        if job_id == "$next":
            return self.next_pending(region, thing)
        e = self._store.execution(region, job_id, thing)
        if e is None or (number is not None and number != e.execution_number):
            raise DeviceError("ResourceNotFound",
                              f"Job execution of job {job_id} on thing {thing} does not exist.")
        return e

    def start_next(self, region: str, thing: str, details: Any,
                   step_timeout: int | None) -> ExecutionRecord | None:
        """StartNextPendingJobExecution: the next pending execution, moved to IN_PROGRESS if
        it was QUEUED (statusDetails and the step timer as given)."""
        details = _details(details, "statusDetails")
        e = self.next_pending(region, thing)
        if e is None:
            return None
        job = self.job_of(e)
        with self._db.transaction():
            if details:
                e.status_details = details
            if e.status == st.QUEUED:
                self._set_status(e, st.IN_PROGRESS, self._clock(), step_timeout=step_timeout,
                                 job=job)
            elif details:
                # Already IN_PROGRESS: its step timer stays. The API reference's
                # StartNextPendingJobExecution resets a step timer only "by calling
                # UpdateJobExecution, setting the status to IN_PROGRESS, and specifying a new
                # timeout value in field stepTimeoutInMinutes".
                self._touch(e, job, None)
        self._after_change(job, e)
        return e

    def update(self, region: str, thing: str, job_id: str, u: Update) -> ExecutionRecord:
        """UpdateJobExecution ("Jobs device MQTT API operations")."""
        e = self._store.execution(region, job_id, thing)
        if e is None or (u.execution_number is not None
                         and u.execution_number != e.execution_number):
            raise DeviceError("ResourceNotFound",
                              f"Job execution of job {job_id} on thing {thing} does not exist.")
        job = self.job_of(e)
        try:
            status = st.check_device_update(e.status, u.status)
        except st.TransitionError as err:
            raise DeviceError(err.code, err.message,
                              e if err.code == "InvalidStateTransition" else None) from None
        if u.expected_version is not None and u.expected_version != e.version:
            raise DeviceError("VersionMismatch", f"The expected version {u.expected_version} "
                              f"does not match the job execution's version {e.version}.", e)
        details = _details(u.status_details, "statusDetails")
        if u.step_timeout is not None and not (u.step_timeout == -1 or
                                               1 <= u.step_timeout <= 10080):
            raise DeviceError("InvalidRequest", "stepTimeoutInMinutes must be -1 or between 1 "
                              "and 10080.")
        with self._db.transaction():
            if u.status_details is not None:
                e.status_details = details
            if status == e.status:
                self._touch(e, job, u.step_timeout)
            else:
                self._set_status(e, status, self._clock(), step_timeout=u.step_timeout, job=job)
        self._after_change(job, e)
        return e

    # --- transitions -------------------------------------------------------------------------

    def _touch(self, e: ExecutionRecord, job: JobRecord, step_timeout: int | None) -> None:
        """An update that keeps the status: a new version, maybe a new step timer."""
        now = self._clock()
        e.version += 1
        e.updated_at = now
        if step_timeout is not None and e.status == st.IN_PROGRESS:
            e.step_started, e.step_minutes = (None, None) if step_timeout == -1 \
                else (now, step_timeout)
            self._rearm(e, job)
        self._store.save_execution(e)

    def _rearm(self, e: ExecutionRecord, job: JobRecord) -> None:
        timeout = (job.option("timeoutConfig") or {}).get("inProgressTimeoutInMinutes")
        e.timeout_at = criteria.timeout_deadline(e.started_at, timeout, e.step_started,
                                                 e.step_minutes, self._minute)
        key = ("exec", e.region, e.job_id, e.thing_name)
        if e.timeout_at is None:
            self.timers.cancel(key)
        else:
            self.timers.arm(key, e.timeout_at)

    def _set_status(self, e: ExecutionRecord, status: str, now: float, *,
                    step_timeout: int | None = None, job: JobRecord | None = None,
                    force_canceled: bool = False) -> None:
        e.status, e.updated_at = status, now
        e.version += 1
        if status == st.IN_PROGRESS:
            e.started_at = now
            if step_timeout is not None and step_timeout > 0:
                e.step_started, e.step_minutes = now, step_timeout
            assert job is not None
            self._rearm(e, job)
        elif status in st.TERMINAL:
            e.timeout_at = None
            e.force_canceled = force_canceled
            self.timers.cancel(("exec", e.region, e.job_id, e.thing_name))
        self._store.save_execution(e)

    def _time_out(self, job: JobRecord, thing: str) -> None:
        e = self._store.execution(job.region, job.job_id, thing)
        now = self._clock()
        if e is None or e.status != st.IN_PROGRESS or e.timeout_at is None:
            return
        if e.timeout_at > now:
            self.timers.arm(("exec", e.region, e.job_id, thing), e.timeout_at)
            return
        with self._db.transaction():
            self._set_status(e, st.TIMED_OUT, now)
        self._after_change(job, e)

    def _after_change(self, job: JobRecord, e: ExecutionRecord, notify_only: bool = False
                      ) -> None:
        """After an execution changed (committed): notifications, its event, and what a
        terminal status sets off (retry, abort, completion)."""
        scope = _scope_of(job)
        if e.status in st.TERMINAL:
            self._announce(JobExecutionEventOccurred(
                scope, st.EVENT_OPERATION[e.status], job.job_id,
                scope.arn("thing", e.thing_name), e.status, dict(e.status_details)))
        if not notify_only and e.status in st.TERMINAL:
            self._retry(job, e)
        self._notify(job.region, e.thing_name)
        if notify_only or e.status not in st.TERMINAL:
            return
        if job.status == st.JOB_IN_PROGRESS and job.option("abortConfig") and \
                criteria.abort_triggered(job.option("abortConfig"), self.counts(job)):
            self._cancel(job, False, None, None)
            return
        self._maybe_complete(job)

    def _retry(self, job: JobRecord, e: ExecutionRecord) -> None:
        """A FAILED or TIMED_OUT execution is queued again while the job's retry criteria
        allow ("Job execution timeout and retry configurations")."""
        if job.status != st.JOB_IN_PROGRESS or e.retry_attempt >= criteria.retries_allowed(
                job.option("jobExecutionsRetryConfig"), e.status):
            return
        now = self._clock()
        e.status, e.version, e.updated_at, e.queued_at = st.QUEUED, e.version + 1, now, now
        e.started_at = e.step_started = e.step_minutes = e.timeout_at = None
        e.retry_attempt += 1
        with self._db.transaction():
            self._store.save_execution(e)

    # --- notifications -----------------------------------------------------------------------

    def _notify(self, region: str, thing: str) -> None:
        """`notify` always; `notify-next` when the next pending execution changed."""
        if region != self._region:
            return
        now = self._clock()
        pending = self._store.executions_of_thing(region, thing, tuple(st.PENDING))
        base = f"$aws/things/{thing}/jobs"
        self._publish(f"{base}/notify", json.dumps(payloads.notify(pending, now)).encode())
        first = payloads.next_pending(pending)
        mark = None if first is None else (first.job_id, first.status)
        if self._next_sent.get((region, thing), "unsent") == mark:
            return
        self._next_sent[(region, thing)] = mark
        document = None
        if first is not None:
            job = self._store.job(region, first.job_id)
            document = self.document_for_device(job) if job is not None else None
        self._publish(f"{base}/notify-next",
                      json.dumps(payloads.notify_next(first, document, now)).encode())

    # --- templates ---------------------------------------------------------------------------

    def _template_of_arn(self, scope: Scope, arn: str) -> TemplateRecord:
        template_id = arn.rpartition("/")[2]
        return found(self._store.template(scope.region, template_id),
                     f"Job template {template_id} does not exist.")

    def create_template(self, scope: Scope, p: dict[str, Any]) -> TemplateRecord:
        template_id = p["jobTemplateId"]
        if self._store.template(scope.region, template_id) is not None:
            raise AwsError("ConflictException", f"Job template {template_id} already exists.",
                           resourceId=template_id)
        config = {k: p[k] for k in TEMPLATE_KEYS if p.get(k) is not None}
        document, source = p.get("document"), p.get("documentSource")
        if p.get("jobArn"):
            job = self.require_job(scope, p["jobArn"].rpartition("/")[2])
            config = {k: job.config[k] for k in TEMPLATE_KEYS if k in job.config} | config
            document, source = job.document, None
        if document is None and source is None:
            raise invalid("A job template needs a document, a documentSource or a jobArn.")
        if document is not None:
            self._document(document, None)
        else:
            self._document(None, source)
        self._check_config(config)
        t = TemplateRecord(scope.region, template_id, scope.arn("jobtemplate", template_id),
                           p["description"], document, source, config, self._clock())
        with self._db.transaction():
            self._store.insert_template(t, list(p.get("tags") or []))
        return t

    def describe_template(self, scope: Scope, template_id: str) -> TemplateRecord:
        return found(self._store.template(scope.region, template_id),
                     f"Job template {template_id} does not exist.")

    def list_templates(self, scope: Scope, after: str, limit: int) -> list[TemplateRecord]:
        return self._store.templates(scope.region, after, limit)

    def delete_template(self, scope: Scope, template_id: str) -> None:
        self.describe_template(scope, template_id)
        with self._db.transaction():
            self._store.delete_template(scope.region, template_id)
