"""What the jobs feature keeps: plain records built from rows by column name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class JobRecord:
    region: str
    job_id: str
    seq: int
    arn: str
    status: str
    target_selection: str
    targets: list[str]
    description: str | None
    document: str
    document_source: str | None
    config: dict[str, Any]  # presignedUrlConfig, jobExecutionsRolloutConfig, abortConfig, ...
    template_arn: str | None
    tags: list[dict[str, str]]
    reason_code: str | None
    comment: str | None
    force_canceled: bool
    created: float
    updated: float
    completed: float | None
    rollout_state: dict[str, Any] | None
    targets_waiting: bool = False  # targets not given their execution yet

    def option(self, name: str) -> Any:
        return self.config.get(name)


@dataclass(slots=True)
class ExecutionRecord:
    region: str
    job_id: str
    thing_name: str
    execution_number: int
    status: str
    status_details: dict[str, str]
    queued_at: float
    started_at: float | None
    updated_at: float
    version: int
    retry_attempt: int
    step_started: float | None
    step_minutes: int | None
    timeout_at: float | None
    force_canceled: bool
    seq: int


@dataclass(slots=True)
class TemplateRecord:
    region: str
    template_id: str
    arn: str
    description: str
    document: str | None
    document_source: str | None
    config: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
