"""Lambda deployment packages for tests: a handler module zipped in memory."""

from __future__ import annotations

import io
import zipfile

ROLE = "arn:aws:iam::123456789012:role/lambda-role"

HANDLER = '''
import json, logging, os, sys, time
import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)
print("init phase")


def lambda_handler(event, context):
    print("event", json.dumps(event, sort_keys=True))
    mode = event.get("mode")
    if mode == "raise":
        raise ValueError("boom")
    if mode == "sleep":
        time.sleep(event["seconds"])
    if mode == "exit":
        sys.exit(3)
    if mode == "iot":
        return boto3.client("iot").describe_thing(thingName=event["thing"])["thingName"]
    if mode == "touch":
        with open(event["path"], "a") as f:
            f.write("x")
        if os.path.getsize(event["path"]) < event.get("fail_until", 0):
            raise RuntimeError("not yet")
    return {"request_id": context.aws_request_id, "name": context.function_name,
            "version": context.function_version, "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb, "group": context.log_group_name,
            "stream": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "env": {k: os.environ.get(k) for k in (
                "AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "AWS_LAMBDA_LOG_GROUP_NAME", "_HANDLER", "LAMBDA_TASK_ROOT", "GREETING")}}
'''


def package(source: str = HANDLER, module: str = "lambda_function") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(f"{module}.py", source)
    return out.getvalue()
