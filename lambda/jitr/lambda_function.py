"""The workshop's JITR function: invoked by the topic rule on
`$aws/events/certificates/registered/#` for a certificate in PENDING_ACTIVATION, it creates
the thing `jitr-<certificateId>`, a policy for it, activates the certificate and attaches
policy and thing. Plain boto3 and the standard library only: the same zip deploys unchanged
to AWS Lambda (local core points boto3 at itself through AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

POLICY_NAME = os.environ.get("JITR_POLICY_NAME", "JITR_Policy")


def policy_document(region: str, account_id: str) -> dict[str, Any]:
    """Connect as the thing named like the client id; publish and receive under ji/tr."""
    arn = f"arn:aws:iot:{region}:{account_id}"
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect",
         "Resource": f"{arn}:client/${{iot:Connection.Thing.ThingName}}"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
         "Resource": f"{arn}:topic/ji/tr*"},
        {"Effect": "Allow", "Action": "iot:Subscribe",
         "Resource": f"{arn}:topicfilter/ji/tr*"},
    ]}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.info("event: %s", json.dumps(event))
    region = os.environ.get("AWS_REGION", "us-east-1")
    account_id = event["awsAccountId"]
    certificate_id = event["certificateId"]
    iot = boto3.client("iot", region_name=region)

    thing_name = f"jitr-{certificate_id}"
    certificate_arn = f"arn:aws:iot:{region}:{account_id}:cert/{certificate_id}"
    try:
        iot.create_policy(policyName=POLICY_NAME,
                          policyDocument=json.dumps(policy_document(region, account_id)))
    except iot.exceptions.ResourceAlreadyExistsException:
        logger.info("policy %s exists", POLICY_NAME)
    iot.create_thing(thingName=thing_name)
    iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")
    iot.attach_policy(policyName=POLICY_NAME, target=certificate_arn)
    iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn)
    logger.info("thing %s created, certificate %s activated", thing_name, certificate_id)
    return {"thingName": thing_name, "certificateId": certificate_id}
