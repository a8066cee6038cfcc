"""Schemathesis hooks for tests/openapi/run.sh (SCHEMATHESIS_HOOKS=hooks).

GET /api/v1/ws answers a valid upgrade with 101 and then speaks WebSocket
on that connection. The HTTP client must not reuse it for the next request
(it would read WebSocket frames as a status line): after a 101 the
connection is closed, so the pool opens a fresh one. Nothing about the
request or the checks changes.
"""

import schemathesis


def _close_upgraded(response, *args, **kwargs):
    if response.status_code == 101:
        conn = getattr(response.raw, "connection", None) or getattr(response.raw, "_connection", None)
        if conn is not None:
            conn.close()
    return response


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path == "/api/v1/ws":
        kwargs["hooks"] = {"response": [_close_upgraded]}
