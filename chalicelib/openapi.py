"""The OpenAPI 3 document of the service, built from the marshmallow schemas.

Served at ``GET /api/v1/openapi.json``. The routes are listed here as data;
a test checks that they are exactly the routes the app has.
"""
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from chalicelib import config, schemas

P = "/api/v1"


class ErrorOut(Schema):
    error = fields.String(required=True, metadata={"description": "snake_case code"})
    message = fields.String(required=True)
    fields_ = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                          data_key="fields", metadata={"description": "on 422 only"})


class RevokedOut(Schema):
    revoked = fields.Integer(required=True)


class DeletedOut(Schema):
    deleted = fields.Boolean(required=True)
    revoked = fields.Integer(required=True)


class ServiceOut(Schema):
    service = fields.String(required=True)
    version = fields.String(required=True)


DESCRIPTIONS = {
    400: "The body is not a JSON object.",
    401: "No token (API Gateway), or the credentials do not match.",
    403: "The token was denied (API Gateway), or the action is not allowed.",
    404: "No such token or user.",
    409: "The username or email is taken.",
    413: "The body is over 64 KB.",
    422: "Invalid fields; `fields` names each one.",
    429: "Too many failed logins for this username; see Retry-After.",
    503: "DynamoDB is briefly unavailable; see Retry-After.",
}
# API Gateway (and chalice local) answer 401/403 for the authorizer, before
# the app runs, in their own body shape in chalice local.
AUTH_ERRORS = (401, 403)
BODY_ERRORS = (400, 413, 422)

LIMIT = {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}}
CURSOR = {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}}
KEEP = {"name": "keep_current", "in": "query", "required": False,
        "schema": {"type": "string", "enum": ["true", "false"], "default": "false"}}


def _path_param(name):
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


# (operation id = the view's name, path, method, summary, token needed, body
#  schema, (status, schema), errors, parameters)
ROUTES = [
    ("index", "/", "get", "Names the service and its version.", False, None, (200, ServiceOut), (), []),
    ("openapi_document", P + "/openapi.json", "get", "This document.", False, None, (200, None), (), []),
    ("signup", P + "/signup", "post", "Creates a user.", False, schemas.SignupIn,
     (201, schemas.UserOut), BODY_ERRORS + (409, 503), []),
    ("login", P + "/login", "post", "Exchanges a username and password for a token.", False,
     schemas.LoginIn, (200, schemas.LoginOut), BODY_ERRORS + (401, 429, 503), []),
    ("logout", P + "/logout", "post", "Revokes the token that makes this request.", True, None,
     (200, RevokedOut), (503,), []),
    ("users_me", P + "/users/me", "get", "The user that makes this request.", True, None,
     (200, schemas.UserOut), (404, 503), []),
    ("delete_me", P + "/users/me", "delete", "Deletes the user and all its tokens.", True,
     schemas.AccountDeleteIn, (200, DeletedOut), BODY_ERRORS + (404, 429, 503), []),
    ("change_password", P + "/users/me/password", "post", "Changes the password; revokes every other token.", True,
     schemas.PasswordChangeIn, (200, RevokedOut), BODY_ERRORS + (429, 503), []),
    ("list_tokens", P + "/tokens", "get", "The caller's live tokens, newest first.", True, None,
     (200, schemas.TokenPageOut), (422, 503), [LIMIT, CURSOR]),
    ("revoke_tokens", P + "/tokens", "delete", "Revokes all the caller's tokens, or all but this one.", True,
     None, (200, RevokedOut), (422, 503), [KEEP]),
    ("revoke_token", P + "/tokens/{token_id}", "delete", "Revokes one of the caller's tokens.", True, None,
     (200, RevokedOut), (404, 503), [_path_param("token_id")]),
    ("admin_list_tokens", P + "/admin/users/{username}/tokens", "get", "Admin: another user's live tokens.", True,
     None, (200, schemas.TokenPageOut), (404, 422, 503),
     [_path_param("username"), LIMIT, CURSOR]),
    ("admin_revoke_tokens", P + "/admin/users/{username}/tokens", "delete", "Admin: revokes every token of a user.",
     True, None, (200, RevokedOut), (404, 503), [_path_param("username")]),
]

_built = []


def _json(schema):
    return {"application/json": {"schema": schema}}


def _operation(operation_id, summary, token, body, success, errors, parameters):
    status, out = success
    responses = {str(status): {"description": "Success",
                               "content": _json(out if out else {"type": "object"})}}
    # Any route refuses an oversized body, whether it reads one or not.
    for code in sorted(set(errors) | {413}):
        responses[str(code)] = {"description": DESCRIPTIONS[code], "content": _json(ErrorOut)}
    if token:
        for code in AUTH_ERRORS:
            # The app's own 403 (not an admin, wrong password) has the error
            # shape; the authorizer's deny has API Gateway's, so: any object.
            responses[str(code)] = {"description": DESCRIPTIONS[code],
                                    "content": _json({"type": "object"})}
    operation = {"operationId": operation_id, "summary": summary, "parameters": parameters,
                 "responses": responses}
    if token:
        operation["security"] = [{"bearer": []}]
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    return operation


def document():
    """The OpenAPI document as a dict, built once per process."""
    if not _built:
        spec = APISpec(title=config.SERVICE_NAME, version=config.VERSION,
                       openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
        spec.components.security_scheme(
            "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
        paths = {}
        for operation_id, path, method, *rest in ROUTES:
            paths.setdefault(path, {})[method] = _operation(operation_id, *rest)
        for path, operations in paths.items():
            spec.path(path=path, operations=operations)
        _built.append(spec.to_dict())
    return _built[0]
