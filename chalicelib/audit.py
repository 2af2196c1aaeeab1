"""Structured logs: one JSON line per request, and audit events.

Only ids, counts, statuses and timings go in: never a token, a password, a
hash or a request body. Lambda ships standard output to CloudWatch Logs,
where each line can be queried by its fields.

Each line is written by this logger's own handler, the same bare JSON line
wherever the code runs (Lambda, `make run`, a script), and goes nowhere else:
Lambda's runtime and `chalice local` put a handler on the root logger, and
a line reaching it would be written a second time, in another format.
"""
import json
import logging
import sys

from chalicelib.rules import USERNAME

log = logging.getLogger("login-service")
log.setLevel(logging.INFO)
log.propagate = False
if not log.handlers:
    _handler = logging.StreamHandler(sys.stdout)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(_handler)


def event(name, level=logging.INFO, **fields):
    log.log(level, json.dumps({"event": name, **fields}, separators=(",", ":"), default=str))


def username(text):
    """A username fit for a log line. People type passwords into the username
    field; a name that cannot be a username is not written down."""
    return text if USERNAME.fullmatch(text) else "<malformed>"


def request(request_id, method, route, status, started, ended, user_id=None):
    event("request", request_id=request_id, method=method, route=route, status=status,
          latency_ms=round((ended - started) * 1000, 1), user_id=user_id)
