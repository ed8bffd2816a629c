"""What the jobs feature announces on the bus (after the change is committed): the events
feature turns them into `$aws/events/job/...` and `$aws/events/jobExecution/...` ("Jobs
events") while JOB / JOB_EXECUTION events are enabled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetsim.localcore.scope import Scope


@dataclass(frozen=True, slots=True)
class JobEventOccurred:
    scope: Scope
    operation: str  # completed | canceled | deleted | cancellation_in_progress | ...
    job_id: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobExecutionEventOccurred:
    scope: Scope
    operation: str  # succeeded | failed | rejected | timed_out | canceled | removed | deleted
    job_id: str
    thing_arn: str
    status: str
    status_details: dict[str, str] = field(default_factory=dict)
