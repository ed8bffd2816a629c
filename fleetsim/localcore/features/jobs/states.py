"""Job and job-execution states, as the AWS IoT developer guide's "Job and job execution
states" describes them: which statuses are terminal, which a device may set, which updates a
device may make from which status, and the counts describe-job reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Job statuses (botocore `JobStatus`).
JOB_IN_PROGRESS, JOB_CANCELED, JOB_COMPLETED = "IN_PROGRESS", "CANCELED", "COMPLETED"
JOB_DELETION_IN_PROGRESS, JOB_SCHEDULED = "DELETION_IN_PROGRESS", "SCHEDULED"

# Job execution statuses (botocore `JobExecutionStatus`).
QUEUED, IN_PROGRESS, SUCCEEDED, FAILED = "QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED"
TIMED_OUT, REJECTED, REMOVED, CANCELED = "TIMED_OUT", "REJECTED", "REMOVED", "CANCELED"
EXECUTION_STATUSES = (QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, TIMED_OUT, REJECTED, REMOVED,
                      CANCELED)
PENDING = frozenset((QUEUED, IN_PROGRESS))
TERMINAL = frozenset((SUCCEEDED, FAILED, TIMED_OUT, REJECTED, REMOVED, CANCELED))
# UpdateJobExecution: "The new status for the job execution (IN_PROGRESS, FAILED, SUCCEEDED,
# or REJECTED)" ("Jobs device MQTT API operations").
DEVICE_STATUSES = frozenset((IN_PROGRESS, SUCCEEDED, FAILED, REJECTED))

# jobProcessDetails members, by the execution status each counts.
PROCESS_COUNTS = {
    CANCELED: "numberOfCanceledThings", SUCCEEDED: "numberOfSucceededThings",
    FAILED: "numberOfFailedThings", REJECTED: "numberOfRejectedThings",
    QUEUED: "numberOfQueuedThings", IN_PROGRESS: "numberOfInProgressThings",
    REMOVED: "numberOfRemovedThings", TIMED_OUT: "numberOfTimedOutThings",
}
# The `$aws/events/jobExecution/<jobId>/<operation>` operation of each terminal status.
EVENT_OPERATION = {SUCCEEDED: "succeeded", FAILED: "failed", REJECTED: "rejected",
                   TIMED_OUT: "timed_out", CANCELED: "canceled", REMOVED: "removed"}


class TransitionError(Exception):
    """A device update the current status does not allow: `code` is the Jobs device API's
    error code (InvalidRequest, InvalidStateTransition)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def check_device_update(current: str, new: object) -> str:
    """The status a device's UpdateJobExecution asks for, if `current` allows it: a device
    moves a QUEUED or IN_PROGRESS execution to IN_PROGRESS, SUCCEEDED, FAILED or REJECTED; a
    terminal execution cannot change ("Job and job execution states")."""
    if not isinstance(new, str) or new not in EXECUTION_STATUSES:
        raise TransitionError("InvalidRequest", f"Invalid status: {new!r}. The status must be "
                              "one of IN_PROGRESS, SUCCEEDED, FAILED, REJECTED.")
    if new not in DEVICE_STATUSES:
        raise TransitionError("InvalidRequest", f"A device cannot set the status {new}: it "
                              "must be one of IN_PROGRESS, SUCCEEDED, FAILED, REJECTED.")
    if current in TERMINAL:
        raise TransitionError("InvalidStateTransition", f"Cannot update the job execution "
                              f"from {current} to {new}: {current} is a terminal status.")
    return new


def process_details(counts: Mapping[str, int], processing: Iterable[str] = ()
                    ) -> dict[str, object]:
    """describe-job's `jobProcessDetails` from execution counts by status."""
    details: dict[str, object] = {member: int(counts.get(status, 0))
                                  for status, member in PROCESS_COUNTS.items()}
    targets = list(processing)
    if targets:
        details["processingTargets"] = targets
    return details
