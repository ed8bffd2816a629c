"""The answer to a call for a service local core does not serve (`aws iam list-roles`,
`aws cloudformation ...`, `aws sqs ...` with `AWS_ENDPOINT_URL` pointing every service here):
one `NotImplemented` error, HTTP 501, in that service's own protocol (botocore's model
`metadata.protocol`: a JSON body for json and rest-json, an XML `ErrorResponse` for query and
rest-xml, EC2's `Response/Errors`), so the SDK or CLI shows it as one readable error line.
501 is not retried by botocore (it retries 500, 502, 503 and 504)."""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from botocore.exceptions import DataNotFoundError
from botocore.loaders import Loader

CODE = "NotImplemented"
STATUS = 501

# SigV4 signing names that differ from the botocore model name (the model is found by name,
# then checked by its own signing name).
_MODEL_OF = {"monitoring": "cloudwatch", "email": "ses", "states": "stepfunctions",
             "iotdata": "iot-data", "execute-api": "apigateway",
             "elasticloadbalancing": "elbv2", "elasticmapreduce": "emr"}


@lru_cache(maxsize=64)
def model_metadata(signing_name: str) -> dict[str, Any] | None:
    """The botocore model metadata of the service signing as `signing_name`, if one is known."""
    name = _MODEL_OF.get(signing_name, signing_name)
    try:
        metadata: dict[str, Any] = Loader().load_service_model(name, "service-2")["metadata"]
    except DataNotFoundError:
        return None
    signs_as = metadata.get("signingName") or metadata.get("endpointPrefix")
    return metadata if signs_as == signing_name else None


def guess_protocol(request: web.Request) -> str:
    """For a service botocore's models do not name: what the request itself looks like."""
    if "X-Amz-Target" in request.headers:
        return "json"
    if request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        return "query"
    return "rest-json"


def message(signing_name: str, metadata: dict[str, Any] | None, served: list[str]) -> str:
    title = (metadata or {}).get("serviceId") or signing_name
    return (f"local core does not serve {title} ('{signing_name}'); it serves "
            f"{', '.join(sorted(served))}")


def response(protocol: str, json_version: str | None, text: str, code: str = CODE,
             status: int = STATUS) -> web.Response:
    """An error in `protocol` (botocore's `metadata.protocol`)."""
    request_id = str(uuid.uuid4())
    if protocol in ("json", "rest-json"):
        body = {"__type": code, "message": text}
        content_type = (f"application/x-amz-json-{json_version or '1.1'}" if protocol == "json"
                        else "application/json")
        return web.Response(status=status, body=json.dumps(body).encode(),
                            content_type=content_type,
                            headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id,
                                     "x-amzn-query-error": f"{code};Sender"})
    if protocol == "ec2":
        xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>{escape(text)}</Message>"
               f"</Error></Errors><RequestID>{request_id}</RequestID></Response>")
    else:  # query, rest-xml
        xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
               f"<Message>{escape(text)}</Message></Error><RequestId>{request_id}</RequestId>"
               "</ErrorResponse>")
    return web.Response(status=status, text=xml, content_type="text/xml",
                        headers={"x-amzn-RequestId": request_id})


def not_served(request: web.Request, signing_name: str, served: list[str]) -> web.Response:
    metadata = model_metadata(signing_name)
    protocol = metadata["protocol"] if metadata else guess_protocol(request)
    version = metadata.get("jsonVersion") if metadata else None
    return response(protocol, version, message(signing_name, metadata, served))
