"""The OpenAPI 3 document of the service, served at ``GET /api/v1/openapi.json``.

Built from Chalice's own route table (path, method, view name, authorizer,
docstring) and the contract each view declares with ``@contract``
(chalicelib/contract.py), so a route is stated once, beside its view. Only this
route loads apispec.

OpenAPI 3.0.3 rather than 3.1: apispec's marshmallow plugin writes 3.0's
``nullable``, which openapi-python-client, schemathesis and the validator all
read well; 3.1 would respell every nullable field and give the generated
client nothing more.
"""
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from chalicelib import config, schemas
from chalicelib.contract import OAUTH_STATUSES
from chalicelib.terms import MAX_BODY_BYTES, PAGE_SIZE, PREFIX

# Every error, the app's and API Gateway's alike, has this body.
ERROR = "Error"

APP_ERRORS = {
    400: "The body is not a UTF-8 JSON object.",
    401: "Wrong credentials: the username or password at login, the client's on introspection.",
    403: "Not allowed: the caller is not an admin, or the password is wrong.",
    404: "No such live token, or no such user.",
    409: "The username or email is taken.",
    413: f"The body is over {MAX_BODY_BYTES // 1024} KB.",
    422: "Invalid fields; `fields` names each one.",
    429: "Too many failed logins for this username; wait Retry-After seconds.",
    503: "Storage is briefly unavailable; retry after Retry-After seconds.",
}
# What a route with client credentials (an OAuth endpoint) adds to its
# errors' descriptions.
OAUTH_ERRORS = {
    400: "Or: client credentials sent both as HTTP Basic and in the body (`invalid_request`).",
}
OAUTH_NOTE = "`error_description` repeats `message` (RFC 6749 section 5.2)."
# What API Gateway answers itself, before any view runs, on a route behind
# the authorizer (its Gateway Responses, deploy/gateway_responses.py).
GATEWAY_ERRORS = {
    401: "No Authorization header (API Gateway).",
    403: "The token is invalid, expired or revoked (API Gateway): drop it.",
    404: "No route has this path, as for an empty or slashed path parameter (API Gateway).",
    503: "The authorizer could not decide (API Gateway): the token may still be good.",
}
TOKEN_ERRORS = (401, 403, 503)

# Response headers, defined once under components.headers.
HEADER_DEFINITIONS = {
    "Cache-Control": {"description": "Every /api/v1 answer: it may hold a token or account data.",
                      "required": True, "schema": {"type": "string", "enum": ["no-store"]}},
    "X-Content-Type-Options": {"description": "Every answer: read it as its Content-Type "
                                              "says, never as sniffed.",
                               "required": True, "schema": {"type": "string",
                                                           "enum": ["nosniff"]}},
    "Retry-After": {"description": "Whole seconds to wait before trying again.",
                    "required": True, "schema": {"type": "integer", "minimum": 1}},
    "WWW-Authenticate": {"description": "The scheme to authenticate with.",
                         "required": True, "schema": {"type": "string", "enum": ["Bearer"]}},
    "WWW-Authenticate-Basic": {"description": "Client credentials are HTTP Basic.",
                               "required": True,
                               "schema": {"type": "string", "pattern": "^Basic realm="}},
}
# A component whose header has another name: both schemes' challenges are
# WWW-Authenticate.
HEADER_NAMES = {"WWW-Authenticate-Basic": "WWW-Authenticate"}
# The security scheme of each kind of credentials a view checks itself
# (contract.Contract.credentials), and the challenge of its 401.
CREDENTIALS = {"client": ("client", "WWW-Authenticate-Basic")}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "client": {"type": "http", "scheme": "basic",
               "description": "A client's id and secret (manage.py create-client), each "
                              "form-encoded, as HTTP Basic (RFC 6749 section 2.3.1); or "
                              "instead, never as well, `client_id` and `client_secret` in "
                              "the body."},
}
# Headers by status, beside those of every answer (ALWAYS) and the
# Cache-Control of every /api/v1 answer.
ALWAYS = ("X-Content-Type-Options",)
HEADERS = {429: ("Retry-After",), 503: ("Retry-After",)}

_low, _high, _default = PAGE_SIZE
QUERY = {
    "limit": {"description": "The page size.",
              "schema": {"type": "integer", "minimum": _low, "maximum": _high,
                         "default": _default}},
    "cursor": {"description": "The `next_cursor` of the previous page of this listing.",
               "schema": {"type": "string"}},
    "keep_current": {"description": "Keep the token that makes this request.",
                     "schema": {"type": "boolean", "default": False}},
}

# A route's tag is the first segment of its path under the prefix, where
# that is one of these; the service's own routes and the auth routes
# (signup, login, logout) get the last two.
TAGS = {
    "users": "The caller's account.",
    "tokens": "The caller's sessions (tokens).",
    "admin": "Other users' sessions and security logs; needs the admin role.",
    "introspect": "Checking tokens (RFC 7662), for resource servers with client credentials.",
    "auth": "Signing up, logging in and out.",
    "service": "The service itself and this document.",
}
SERVICE_PATHS = ("/", PREFIX + "/openapi.json")

SERVERS = [
    {"url": "http://127.0.0.1:8000", "description": "make run (PORT changes the port)"},
    {"url": "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
     "description": "A deployed stage",
     "variables": {"api_id": {"default": "api-id", "description": "The REST API's id."},
                   "region": {"default": "us-east-1"},
                   "stage": {"default": "prod",
                             "description": "The stage: its api_gateway_stage in "
                                            ".chalice/config.json is its name."}}},
]

_built = []


def _tag(path):
    if path in SERVICE_PATHS:
        return "service"
    segment = path[len(PREFIX) + 1:].split("/")[0]
    return segment if segment in TAGS else "auth"


def _json(schema_name):
    schema = getattr(schemas, schema_name) if schema_name else {"type": "object"}
    return {"application/json": {"schema": schema}}


def _headers(names):
    """Response headers by their components' names (HEADER_DEFINITIONS)."""
    return {HEADER_NAMES.get(name, name): {"$ref": "#/components/headers/" + name}
            for name in names}


def _body(schema_name, content_types):
    """The request body in the route's first content type, its preferred.

    A route that takes a second one (introspection also reads JSON) says so
    in docs/api.md: openapi-python-client generates a client that does not
    type-check for a body of two media types.
    """
    return {content_types[0]: {"schema": getattr(schemas, schema_name)}}


def _error(status, always, app, gateway, credentials=None):
    text = " Or: ".join(d for d in (APP_ERRORS[status] if app else None,
                                     GATEWAY_ERRORS[status] if gateway else None) if d)
    challenge = ("WWW-Authenticate",) if gateway and status == 401 else ()
    if credentials and app and status == 401:
        challenge = (CREDENTIALS[credentials][1],)
    if credentials and app and status in OAUTH_STATUSES:
        text = " ".join(d for d in (text, OAUTH_ERRORS.get(status), OAUTH_NOTE) if d)
    return {"description": text, "content": _json(ERROR),
            "headers": _headers(always + HEADERS.get(status, ()) + challenge)}


def _implied(declared, entry):
    """The statuses a route has by its shape: (the app's, API Gateway's)."""
    app = {413}  # every route refuses an oversized body, whether it reads one or not
    if declared.body:
        app |= {400, 422}
    if declared.query:
        app.add(422)
    if declared.credentials:
        app.add(401)
    gateway = set(TOKEN_ERRORS) if entry.authorizer is not None else set()
    if entry.view_args:
        gateway.add(404)
    return app, gateway


def _operation(entry):
    declared = entry.view_function.contract
    token = entry.authorizer is not None
    always = ALWAYS + (("Cache-Control",) if entry.uri_pattern.startswith(PREFIX) else ())
    responses = {str(declared.status): {"description": "Success",
                                        "content": _json(declared.answer),
                                        "headers": _headers(always)}}
    app, gateway = _implied(declared, entry)
    app |= set(declared.errors)
    for status in sorted(app | gateway):
        responses[str(status)] = _error(status, always, status in app, status in gateway,
                                        declared.credentials)
    operation = {
        "operationId": entry.view_name,
        "summary": (entry.view_function.__doc__ or "").strip().split("\n")[0],
        "tags": [_tag(entry.uri_pattern)],
        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                       for name in entry.view_args]
        + [{"name": name, "in": "query", "required": False, **QUERY[name]}
           for name in declared.query],
        "responses": responses,
    }
    if token:
        operation["security"] = [{"bearer": []}]
    elif declared.credentials:
        operation["security"] = [{CREDENTIALS[declared.credentials][0]: []}]
    if declared.body:
        operation["requestBody"] = {"required": True,
                                    "content": _body(declared.body, entry.content_types)}
    return operation


def document(routes):
    """The OpenAPI document of ``routes`` (a Chalice app's route table) as a
    dict, built once per process."""
    if not _built:
        spec = APISpec(title=config.SERVICE_NAME, version=config.VERSION, openapi_version="3.0.3",
                       plugins=[MarshmallowPlugin()], servers=SERVERS,
                       info={"description": "Login and token revocation. Every error, the "
                                            "service's and API Gateway's, is an `Error`."})
        for name, scheme in SECURITY_SCHEMES.items():
            spec.components.security_scheme(name, scheme)
        spec.components.schema(ERROR, schema=schemas.Error)
        for name, header in HEADER_DEFINITIONS.items():
            spec.components.header(name, header)
        for name, description in TAGS.items():
            spec.tag({"name": name, "description": description})
        for path, methods in routes.items():
            spec.path(path=path, operations={
                method.lower(): _operation(entry) for method, entry in methods.items()
                if method != "OPTIONS"})
        _built.append(spec.to_dict())
    return _built[0]
