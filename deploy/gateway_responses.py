"""API Gateway's own answers (its Gateway Responses), defined once.

API Gateway answers these by itself, before any view runs: no token, a
denied token, an authorizer that could not decide, an unknown route, a
throttled request. The deployment template puts them inside the API
definition (:func:`swagger`), and `make run` answers the very same status,
headers and body (:func:`http`), so the two cannot drift.

Inside the definition, not as AWS::ApiGateway::GatewayResponse resources:
API Gateway applies a changed Gateway Response only with a new deployment,
and SAM makes one only when the definition changes
(aws/serverless-application-model#390). A standalone resource would be
saved and then ignored until some unrelated route changed.
"""
import json
from dataclasses import dataclass, field
from typing import Optional

# Tokens travel in a header, never in a cookie, so any origin may read these
# answers (the same policy as the app's CORSConfig in app.py).
CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "Authorization,Content-Type"}
# Every /api/v1 answer may concern a token or an account: no cache keeps it.
NO_STORE = {"Cache-Control": "no-store"}
# Every answer, as the app's own (chalicelib/web.py): no browser reads one as
# anything but its Content-Type says.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
# A static value (a Gateway Response cannot compute one): the authorizer's
# DynamoDB client already retried for about 3 s before giving up.
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class GatewayResponse:
    status: Optional[int]  # None: the status API Gateway chose (the DEFAULT_* types)
    code: str
    message: str
    headers: dict = field(default_factory=dict)


UNAVAILABLE = GatewayResponse(503, "service_unavailable", "Authorization is briefly unavailable.",
                              {"Retry-After": str(RETRY_AFTER_SECONDS)})

RESPONSES = {
    "UNAUTHORIZED": GatewayResponse(401, "unauthorized", "A bearer token is required.",
                                    {"WWW-Authenticate": "Bearer"}),
    "ACCESS_DENIED": GatewayResponse(403, "access_denied",
                                     "The token is invalid, expired or revoked."),
    "MISSING_AUTHENTICATION_TOKEN": GatewayResponse(404, "not_found", "There is no such route."),
    # The stage's throttling (deploy/protection.py) refused the request
    # before any function ran. Retry-After is a hint: the limits refill
    # every second.
    "THROTTLED": GatewayResponse(429, "too_many_requests",
                                 "Too many requests; slow down and try again.",
                                 {"Retry-After": str(RETRY_AFTER_SECONDS)}),
    # The authorizer raised (it could not decide) or timed out. AWS documents
    # both types as "500" without saying which one a raising Lambda authorizer
    # produces (reports point to the configuration error), so both are 503:
    # an outage must never read as a 403, which clients take as a logout.
    "AUTHORIZER_FAILURE": UNAVAILABLE,
    "AUTHORIZER_CONFIGURATION_ERROR": UNAVAILABLE,
    # Everything else keeps API Gateway's status but never its message: for
    # an Authorization header it cannot parse, that message quotes the header,
    # token and all.
    "DEFAULT_4XX": GatewayResponse(None, "bad_request", "The request was refused."),
    "DEFAULT_5XX": GatewayResponse(None, "service_unavailable",
                                   "The service is briefly unavailable; try again."),
}


def headers(kind):
    """The headers of one Gateway Response, by name."""
    return {**CORS, **NO_STORE, **NOSNIFF, **RESPONSES[kind].headers}


def body(kind):
    """Its body, in the contract's error shape."""
    response = RESPONSES[kind]
    return f'{{"error": "{response.code}", "message": {json.dumps(response.message)}}}'


def swagger():
    """The ``x-amazon-apigateway-gateway-responses`` of the API definition."""
    found = {}
    for kind, response in RESPONSES.items():
        found[kind] = {
            # Static header values are quoted; unquoted ones would name request data.
            "responseParameters": {f"gatewayresponse.header.{name}": f"'{value}'"
                                   for name, value in headers(kind).items()},
            "responseTemplates": {"application/json": body(kind)},
        }
        if response.status:
            found[kind]["statusCode"] = str(response.status)
    return found


def http(kind, status=None):
    """(status, headers, body bytes) of ``kind`` as API Gateway sends it; a
    type without a status of its own (DEFAULT_4XX) takes the ``status`` API
    Gateway gives."""
    status = RESPONSES[kind].status or status
    if status is None:
        raise ValueError(f"{kind} takes its status from API Gateway")
    return status, {"Content-Type": "application/json", **headers(kind)}, \
        body(kind).encode("utf-8")
