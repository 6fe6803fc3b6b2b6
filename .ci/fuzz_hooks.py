"""Schemathesis hooks for .ci/fuzz.sh (loaded through SCHEMATHESIS_HOOKS).

Generated headers may include the ones that frame the HTTP message itself. A request with a
bogus `Transfer-Encoding` or `Content-Length` is refused by the HTTP server library with a bare
400 before any of the api's code runs, so its answer says nothing about the contract; those
headers are left to the client library.

A task's event stream stays open until the task ends, so a request for the stream of a task
that is still running (a staged rollout the fuzzer started, say) would only time out. Such a
request is pointed at a finished task instead (`.ci/fuzz_seed.py` leaves some); streams of
unknown ids are left alone, for their 404.
"""

import json
import os
import urllib.error
import urllib.request

import schemathesis

FRAMING = {"transfer-encoding", "content-length", "connection", "host", "te", "upgrade", "expect"}
TERMINAL = {"COMPLETED", "FAILED", "PARTIALLY_FAILED", "CANCELED"}
BASE = os.environ.get("FUZZ_BASE", "")
KEY = os.environ.get("FUZZ_KEY", "")
FINISHED = [t for t in os.environ.get("FUZZ_FINISHED_TASKS", "").split(",") if t]


def task_status(task_id):
    request = urllib.request.Request(f"{BASE}/api/v1/tasks/{task_id}", headers={"X-API-KEY": KEY})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["data"]["status"]
    except (urllib.error.URLError, ValueError, KeyError, TypeError):
        return None


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.headers:
        for name in [n for n in case.headers if n.lower() in FRAMING]:
            del case.headers[name]
    if case.operation.path == "/api/v1/tasks/{id}/events" and FINISHED and case.path_parameters:
        task_id = case.path_parameters.get("id")
        if isinstance(task_id, str) and task_id not in FINISHED:
            status = task_status(urllib.request.quote(task_id, safe=""))
            if status is not None and status not in TERMINAL:
                case.path_parameters["id"] = FINISHED[0]
