"""The observer is a client like any other: it needs a certificate and a policy that lets it
subscribe to and receive what it watches (the AWS console's MQTT client uses IAM instead)."""

from __future__ import annotations

import json


def receive_resource(topic_filter: str) -> str:
    """iot:Receive is checked on topics: `a/+/c` and `a/#` become `a/*/c` and `a/*`."""
    return "/".join("*" if level in ("+", "#") else level for level in topic_filter.split("/"))


def observer_policy(region: str, account: str, client_id: str, topics: list[str]) -> str:
    prefix = f"arn:aws:iot:{region}:{account}"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect",
             "Resource": f"{prefix}:client/{client_id}"},
            {"Effect": "Allow", "Action": "iot:Subscribe",
             "Resource": [f"{prefix}:topicfilter/{t}" for t in topics]},
            {"Effect": "Allow", "Action": "iot:Receive",
             "Resource": [f"{prefix}:topic/{receive_resource(t)}" for t in topics]},
        ],
    })
