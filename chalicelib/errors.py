"""The service's error vocabulary, and its one mapping to HTTP responses."""
import json
import logging

from chalice import Response

from chalicelib import audit
from chalicelib.rules import MAX_BODY_BYTES


class ServiceError(Exception):
    """An error the client caused or may act on; its text is safe to show."""

    status = 400
    code = "bad_request"
    message = "The request could not be processed."

    def __init__(self, message=None, code=None, fields=None, headers=None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.fields = fields
        self.headers = headers or {}


class BadRequest(ServiceError):
    status, code = 400, "invalid_body"
    message = "The request body must be a JSON object."


class NotUtf8(BadRequest):
    message = "The request body must be UTF-8 JSON, without a byte order mark."


class ValidationFailed(ServiceError):
    status, code = 422, "validation_failed"
    message = "Some fields are invalid."

    def __init__(self, fields, message=None):
        super().__init__(message=message, fields=fields)


class InvalidCredentials(ServiceError):
    status, code = 401, "invalid_credentials"
    message = "The username or password is incorrect."


class WrongPassword(ServiceError):
    # The password routes run behind the authorizer; 401 there would read as
    # "your token is bad", so the contract uses 403 for a wrong password.
    status, code = 403, "invalid_credentials"
    message = "The password is incorrect."


class Forbidden(ServiceError):
    status, code = 403, "forbidden"
    message = "This action needs the admin role."


class TokenNotFound(ServiceError):
    status, code = 404, "token_not_found"
    message = "No such live token for this user."


class UserNotFound(ServiceError):
    status, code = 404, "user_not_found"
    message = "No such user."


class Conflict(ServiceError):
    status = 409


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"
    message = f"The request body is larger than {MAX_BODY_BYTES // 1024} KB."


class TooManyAttempts(ServiceError):
    status, code = 429, "too_many_attempts"
    message = "Too many failed logins for this username; wait and try again."

    def __init__(self, retry_after):
        super().__init__(headers={"Retry-After": str(retry_after)})


class ServiceUnavailable(ServiceError):
    status, code = 503, "service_unavailable"
    message = "The service is briefly unavailable; try again."

    def __init__(self, message=None, retry_after=1):
        super().__init__(message=message, headers={"Retry-After": str(retry_after)})


def body(code, message, fields=None):
    payload = {"error": code, "message": message}
    if fields is not None:
        payload["fields"] = fields
    return payload


def json_response(payload, status, headers=None):
    return Response(
        body=json.dumps(payload),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def to_response(error):
    return json_response(body(error.code, error.message, error.fields), error.status, error.headers)


def internal_error(exc, route):
    # Only the exception's type goes to the log: messages from libraries can
    # quote request data (a token, a password) and logs outlive requests.
    audit.event("unhandled_error", level=logging.ERROR, route=route, type=type(exc).__name__)
    return json_response(body("internal_error", "An internal error occurred."), 500)
