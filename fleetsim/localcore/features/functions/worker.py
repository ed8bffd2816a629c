"""The Python runtime of one execution environment, run as its own process by `runner.py`
with local core's interpreter (so boto3 is there) and nothing of fleetsim imported. It imports
the handler once (the Init phase), then serves invocations one at a time, as Lambda's runtime
interface client does ("Lambda execution environment lifecycle", "Define Lambda function
handler in Python", "Using the Lambda context object to retrieve Python function
information").

Protocol: requests arrive on stdin and answers leave on the file descriptor named by argv[1],
each a 4-byte big-endian length and a JSON object. stdout and stderr carry the function's
output; after each invocation the marker argv[2] is written to stdout, so the parent knows
where that invocation's output ends. A handler that calls sys.exit (or crashes the
interpreter) ends this process: the parent reports Runtime.ExitError."""

from __future__ import annotations

import importlib
import json
import logging
import os
import resource
import sys
import time
import traceback
from typing import Any


def _read_exact(n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _send(fd: int, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    os.write(fd, len(body).to_bytes(4, "big") + body)


class LambdaContext:
    """The `context` argument, with the attributes the Python runtime documents."""

    def __init__(self, request_id: str, arn: str, deadline_ms: int,
                 client_context: Any = None):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = client_context
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)


class _RequestId(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        # one log event per record, as the runtime keeps multi-line messages together
        record.msg = str(record.msg).replace("\n", "\r")
        return True


def _logging() -> _RequestId:
    """The root logger as the Python runtime sets it up (text format)."""
    request_id = _RequestId()
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t"
                                  "%(aws_request_id)s\t%(message)s\n", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.terminator = ""
    handler.addFilter(request_id)
    root = logging.getLogger()
    root.handlers = [handler]
    return request_id


def _error(message: str, kind: str, request_id: str, trace: list[str]) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": kind, "requestId": request_id,
            "stackTrace": trace}


def _load(handler: str) -> Any:
    """The handler function, or an error payload dict (Runtime.* error types)."""
    module_name, _, function_name = handler.rpartition(".")
    if not module_name:
        return _error(f"Bad handler '{handler}': not enough values to unpack (expected 2, "
                      "got 1)", "Runtime.MalformedHandlerName", "", [])
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as e:
        return _error(f"Unable to import module '{module_name}': {e}",
                      "Runtime.ImportModuleError", "", [])
    except SyntaxError as e:
        return _error(f"Syntax error in module '{module_name}': {e}",
                      "Runtime.UserCodeSyntaxError", "", [])
    except Exception as e:
        return _error(str(e), type(e).__name__, "",
                      traceback.format_list(traceback.extract_tb(e.__traceback__)))
    fn = getattr(module, function_name, None)
    if fn is None:
        return _error(f"Handler '{function_name}' missing on module '{module_name}'",
                      "Runtime.HandlerNotFound", "", [])
    return fn


def _flush(marker: bytes) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, marker)


def _max_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    answers, marker = int(sys.argv[1]), sys.argv[2].encode()
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    sys.path.insert(0, task_root)
    request_id = _logging()
    started = time.perf_counter()
    fn = _load(os.environ["_HANDLER"])
    init_ms = (time.perf_counter() - started) * 1000
    if isinstance(fn, dict):
        sys.stdout.write(f"[ERROR] {fn['errorType']}: {fn['errorMessage']}\n")
    _flush(marker)
    _send(answers, {"init_ms": init_ms, "error": fn if isinstance(fn, dict) else None})
    if isinstance(fn, dict):
        return
    while True:
        header = _read_exact(4)
        if header is None:
            return
        body = _read_exact(int.from_bytes(header, "big"))
        if body is None:
            return
        request = json.loads(body)
        rid = request["id"]
        request_id.request_id = rid
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace", "")
        context = LambdaContext(rid, request["arn"], request["deadline_ms"],
                                request.get("client_context"))
        try:
            result = fn(json.loads(request["event"]), context)
            try:
                answer = {"ok": True, "body": json.dumps(result)}
            except (TypeError, ValueError) as e:
                error = _error(f"Unable to marshal response: {e}", "Runtime.MarshalError",
                               rid, [])
                sys.stdout.write(f"[ERROR] Runtime.MarshalError: {error['errorMessage']}\n")
                answer = {"ok": False, "body": json.dumps(error)}
        except Exception as e:
            trace = traceback.format_list(traceback.extract_tb(e.__traceback__)[1:])
            error = _error(str(e), type(e).__name__, rid, trace)
            text = "".join(["Traceback (most recent call last):\n", *trace]).rstrip("\n")
            sys.stdout.write(f"[ERROR] {error['errorType']}: {error['errorMessage']}\r"
                             + text.replace("\n", "\r") + "\n")
            answer = {"ok": False, "body": json.dumps(error)}
        _flush(marker)
        answer["max_rss_mb"] = _max_rss_mb()
        _send(answers, answer)


if __name__ == "__main__":
    main()
