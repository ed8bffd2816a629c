"""Registry and jobs events on `$aws/events/...`, with AWS IoT's payload shapes.

Payloads follow the AWS IoT developer guide ("Registry events", "Jobs events"). Each event
type is published only while it is enabled by UpdateEventConfigurations (all are disabled by
default, as on AWS). Builders are pure functions (topic, payload) so their shapes are testable
without a broker; the events service checks the configuration and hands them to the broker.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fleetsim.localcore.features.registry.records import (
    ThingGroupRecord,
    ThingRecord,
    ThingTypeRecord,
)

Event = tuple[str, dict[str, Any]]


def _head(event_type: str, operation: str, account_id: str | None) -> dict[str, Any]:
    head: dict[str, Any] = {"eventType": event_type, "eventId": str(uuid.uuid4()),
                            "timestamp": int(time.time() * 1000), "operation": operation}
    if account_id is not None:
        head["accountId"] = account_id
    return head


def thing_event(account_id: str, operation: str, thing: ThingRecord) -> Event:
    """operation: CREATED | UPDATED | DELETED."""
    payload = _head("THING_EVENT", operation, account_id) | {
        "thingId": thing.thing_id, "thingName": thing.name, "versionNumber": thing.version,
        "thingTypeName": thing.type_name, "attributes": dict(thing.attributes)}
    return f"$aws/events/thing/{thing.name}/{operation.lower()}", payload


def thing_type_event(account_id: str, operation: str, thing_type: ThingTypeRecord) -> Event:
    """operation: CREATED | UPDATED (deprecate/undeprecate) | DELETED."""
    date = thing_type.deprecation_date
    payload = _head("THING_TYPE_EVENT", operation, account_id) | {
        "thingTypeId": thing_type.type_id, "thingTypeName": thing_type.name,
        "isDeprecated": thing_type.deprecated,
        "deprecationDate": int(date * 1000) if date is not None else None,
        "searchableAttributes": list(thing_type.searchable_attributes),
        "description": thing_type.description}
    return f"$aws/events/thingType/{thing_type.name}/{operation.lower()}", payload


def thing_type_association_event(operation: str, thing: ThingRecord, type_name: str) -> Event:
    """operation: CREATED (associated) | DELETED (disassociated). AWS's payload for this type
    carries no accountId."""
    payload = _head("THING_TYPE_ASSOCIATION_EVENT", operation, None) | {
        "thingId": thing.thing_id, "thingName": thing.name, "thingTypeName": type_name}
    return f"$aws/events/thingTypeAssociation/thing/{thing.name}/{type_name}", payload


def thing_group_event(account_id: str, operation: str, group: ThingGroupRecord,
                      parent: ThingGroupRecord | None,
                      root_to_parent: list[tuple[str, str]]) -> Event:
    """root_to_parent: (groupArn, groupId) from the root down to the parent."""
    payload = _head("THING_GROUP_EVENT", operation, account_id) | {
        "thingGroupId": group.group_id, "thingGroupName": group.name,
        "versionNumber": group.version,
        "parentGroupName": parent.name if parent else None,
        "parentGroupId": parent.group_id if parent else None,
        "description": group.description,
        "rootToParentThingGroups": [{"groupArn": arn, "groupId": gid}
                                    for arn, gid in root_to_parent],
        "attributes": dict(group.attributes),
        "dynamicGroupMappingId": None}
    return f"$aws/events/thingGroup/{group.name}/{operation.lower()}", payload


def thing_group_membership_event(account_id: str, operation: str, group: ThingGroupRecord,
                                 group_arn: str, thing: ThingRecord, thing_arn: str,
                                 membership_id: str) -> Event:
    """operation: ADDED | REMOVED."""
    payload = _head("THING_GROUP_MEMBERSHIP_EVENT", operation, account_id) | {
        "groupArn": group_arn, "groupId": group.group_id, "thingArn": thing_arn,
        "thingId": thing.thing_id, "membershipId": membership_id}
    return (f"$aws/events/thingGroupMembership/thingGroup/{group.name}/thing/{thing.name}/"
            f"{operation.lower()}", payload)


def thing_group_hierarchy_event(account_id: str, operation: str, parent: ThingGroupRecord,
                                child: ThingGroupRecord) -> Event:
    """operation: ADDED | REMOVED."""
    payload = _head("THING_GROUP_HIERARCHY_EVENT", operation, account_id) | {
        "thingGroupId": parent.group_id, "thingGroupName": parent.name,
        "childGroupId": child.group_id, "childGroupName": child.name}
    return (f"$aws/events/thingGroupHierarchy/thingGroup/{parent.name}/childThingGroup/"
            f"{child.name}/{operation.lower()}", payload)


def job_event(operation: str, job_id: str, fields: dict[str, Any]) -> Event:
    """operation: completed | canceled | deleted | cancellation_in_progress |
    deletion_in_progress; `fields` carries status, targetSelection, targets, description,
    createdAt, lastUpdatedAt, completedAt, comment, jobProcessDetails, forceCanceled as the job
    has them."""
    payload = _head("JOB", operation, None) | {"jobId": job_id} | fields
    return f"$aws/events/job/{job_id}/{operation}", payload


def job_execution_event(operation: str, job_id: str, thing_arn: str, status: str,
                        status_details: dict[str, str] | None = None) -> Event:
    """operation: succeeded | failed | rejected | timed_out | canceled | removed | deleted."""
    payload = _head("JOB_EXECUTION", operation, None) | {
        "jobId": job_id, "thingArn": thing_arn, "status": status}
    if status_details:
        payload["statusDetails"] = dict(status_details)
    return f"$aws/events/jobExecution/{job_id}/{operation}", payload


def certificate_registered_event(account_id: str, certificate_id: str, ca_certificate_id: str,
                                 status: str, registered_at: float) -> Event:
    """Just-in-time registration: published whatever the event configuration says."""
    ms = int(registered_at * 1000)
    payload = {"certificateId": certificate_id, "caCertificateId": ca_certificate_id,
               "timestamp": int(time.time() * 1000), "certificateStatus": status,
               "awsAccountId": account_id, "certificateRegistrationTimestamp": str(ms)}
    return f"$aws/events/certificates/registered/{ca_certificate_id}", payload
