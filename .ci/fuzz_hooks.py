"""Schemathesis hooks for .ci/fuzz.sh (loaded through SCHEMATHESIS_HOOKS).

Generated headers may include the ones that frame the HTTP message itself. A request with a
bogus `Transfer-Encoding` or `Content-Length` is refused by the HTTP server library with a bare
400 before any of the api's code runs, so its answer says nothing about the contract; those
headers are left to the client library.
"""

import schemathesis

FRAMING = {"transfer-encoding", "content-length", "connection", "host", "te", "upgrade", "expect"}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.headers:
        for name in [n for n in case.headers if n.lower() in FRAMING]:
            del case.headers[name]
