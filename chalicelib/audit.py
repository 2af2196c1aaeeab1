"""Structured logs: one JSON line per request, and audit events.

Only ids, counts, statuses and timings go in: never a token, a password, a
hash of one or a request body. Lambda ships standard output to CloudWatch
Logs, where each line can be queried by its fields.

Each line is written by this logger's own handler, the same bare JSON line
wherever the code runs (Lambda, `make run`, a script), and goes nowhere else:
Lambda's runtime and `chalice local` put a handler on the root logger, and
a line reaching it would be written a second time, in another format.
"""
import hashlib
import hmac
import json
import logging
import sys
import unicodedata

from chalicelib import signing_keys
from chalicelib.config import SERVICE_NAME, ConfigurationError

# A fixed label, not the service's name: renaming the service must not
# change what a name hashes to.
_NAME_HASH_LABEL = b"login-service/log-name-hash/v1"

log = logging.getLogger(SERVICE_NAME)
log.setLevel(logging.INFO)
log.propagate = False
if not log.handlers:
    _handler = logging.StreamHandler(sys.stdout)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(_handler)


def event(name, level=logging.INFO, **fields):
    log.log(level, json.dumps({"event": name, **fields}, separators=(",", ":"), default=str))


def attempt(name, login):
    """Whose password an attempt tried, as log fields; ``name`` is the
    login_store.Name the request typed.

    People type passwords into the username field, and most passwords fit
    the username rules, so a name as typed is never written: an account
    that exists is named by its id and stored username, and every line
    carries ``name_hash``, which lets an alert group the attempts at one
    name, lookalikes included, without the name itself.
    """
    fields = {"name_hash": name_hash(name.typed)}
    if login is not None:
        fields.update(user_id=login.user_id, username=login.username)
    if name.malformed:
        fields["malformed"] = True
    return fields


def name_hash(name):
    """16 hex digits of HMAC-SHA256 over the NFKC case-folded name.

    NFKC folding makes lookalikes (a Kelvin sign for ``k``, fullwidth
    letters) hash like the name they imitate. The key comes from the
    current signing secret, so the logs alone cannot be searched for
    guessed names (or passwords); ``manage.py name-hash NAME`` gives an
    operator the hash to look for. A rotated secret changes every hash.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    key = signing_keys.derived_key(_NAME_HASH_LABEL)
    return hmac.new(key, folded.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def problem(exc):
    """Log fields saying why ``exc`` happened, when the service's own words
    can: a ConfigurationError names a setting or a resource and the cause,
    never a value. Any other exception's message may quote request data (a
    token, a password), so it says nothing."""
    return {"problem": str(exc)} if isinstance(exc, ConfigurationError) else {}


def request(request_id, lambda_request_id, method, route, status, started, ended, user_id=None):
    """The request's line: ``request_id`` is API Gateway's (the one its
    access log prints, to join the two), ``lambda_request_id`` the
    function invocation's."""
    event("request", request_id=request_id, lambda_request_id=lambda_request_id, method=method,
          route=route, status=status,
          latency_ms=round((ended - started) * 1000, 1), user_id=user_id)
