"""Each route's declared contract, and errors mapped to HTTP once.

Each view in app.py declares its contract once, with ``@contract``: the
body it reads, the answer it gives, the errors it may give itself. The
decorator loads the body (web.py), shapes the answer, and wraps the view in
:func:`handled`, the single place where a ServiceError becomes the
contract's error body (its status from :data:`STATUS`), and where anything
unexpected becomes a bare 500 with no trace. :func:`edge` is the middleware
every request and answer goes through. chalicelib/openapi.py documents
every route from Chalice's route table and these declarations.
"""
import functools
import json
import logging
from dataclasses import dataclass
from typing import Optional

from chalice import Response

from chalicelib import audit, config, errors
from chalicelib.errors import (BadRequest, PayloadTooLarge, ServiceError, ServiceUnavailable,
                               ValidationFailed)
from chalicelib.terms import MAX_BODY_BYTES, PREFIX
from chalicelib.web import load, schema

# Each error's HTTP status, looked up along its classes (a NotUtf8 is a
# BadRequest, which is a plain ServiceError: 400; a dynamo.Contended is a
# ServiceUnavailable).
STATUS = {
    errors.ServiceError: 400,
    errors.InvalidCredentials: 401,
    errors.InvalidClient: 401,
    # The password routes run behind the authorizer; 401 there would read as
    # "your token is bad", so the contract uses 403 for a wrong password.
    errors.WrongPassword: 403,
    errors.Forbidden: 403,
    errors.TokenNotFound: 404,
    errors.ClientNotFound: 404,
    errors.UserNotFound: 404,
    errors.Conflict: 409,
    errors.MfaRequired: 403,
    errors.InvalidCode: 401,
    errors.InvalidMfaToken: 400,
    errors.InvalidCredential: 400,
    errors.PasskeyNotFound: 404,
    errors.ReauthenticationRequired: 403,
    errors.FactorConflict: 409,
    errors.PayloadTooLarge: 413,
    errors.ValidationFailed: 422,
    errors.TooManyAttempts: 429,
    errors.ServiceUnavailable: 503,
}


# The challenge of a 401 that the app itself answers (RFC 7235): client
# credentials are HTTP Basic (RFC 7617, which asks for a realm).
CHALLENGES = {errors.InvalidClient: f'Basic realm="{config.SERVICE_NAME}"'}


# RFC 6749 section 5.2: a client of an OAuth endpoint (the routes that check
# client credentials) reads its 400 and 401 from ``error_description``. There
# it repeats ``message``; every other answer keeps the contract's shape.
OAUTH_STATUSES = (400, 401)


def status(error):
    """The HTTP status of a ServiceError."""
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def error_response(error, oauth=False):
    """The contract's answer to ``error``: its body (with RFC 6749's
    error_description too on an OAuth endpoint, ``oauth``), its status, and
    a Retry-After (whole seconds) where waiting helps (429 and 503)."""
    payload = {"error": error.code, "message": error.message}
    if oauth and status(error) in OAUTH_STATUSES:
        payload["error_description"] = error.message
    if error.fields is not None:
        payload["fields"] = error.fields
    payload.update(getattr(error, "details", {}))  # mfa_required's token and methods
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if type(error) in CHALLENGES:
        headers["WWW-Authenticate"] = CHALLENGES[type(error)]
    return json_response(payload, status(error), headers)


def json_response(payload, status_code, headers=None):
    return Response(body=json.dumps(payload), status_code=status_code,
                    headers={"Content-Type": "application/json", **(headers or {})})


def internal_error(exc, route):
    # Only the exception's type goes to the log: messages from libraries can
    # quote request data (a token, a password) and logs outlive requests. A
    # ConfigurationError's message is the service's own, naming a setting or
    # a resource and the cause, never a value: a broken deployment says why.
    audit.event("unhandled_error", level=logging.ERROR, route=route, type=type(exc).__name__,
                **audit.problem(exc))
    return json_response({"error": "internal_error", "message": "An internal error occurred."},
                         500)


def edge(request, get_response):
    """The app's http middleware: what every request and answer goes through.

    The size limit is checked here, before any view runs, so that a route
    which never reads its body (logout) refuses an oversized one all the
    same, and changes nothing. Every answer under the prefix, errors
    included, is marked not to be stored by any cache: it may hold a token
    or account data (RFC 6749 section 5.1). No answer may be sniffed into
    another type than it says: a 422 names fields the client chose.
    """
    if request is not None and len(request.raw_body or b"") > MAX_BODY_BYTES:
        response = error_response(PayloadTooLarge())
    else:
        response = get_response(request)
    if request is not None and request.path.startswith(PREFIX):
        response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def handled(func, oauth=False):
    """Wrap a view so that it answers every error in the contract's shape
    (an OAuth endpoint's, ``oauth``, where error_response says)."""
    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ServiceUnavailable as exc:
            # Every 503 says why, in one line: the client learns only to
            # retry, the operator what failed and how often it was tried.
            audit.event("service_unavailable", level=logging.WARNING, route=func.__name__,
                        **exc.cause)
            return error_response(exc, oauth)
        except ServiceError as exc:
            return error_response(exc, oauth)
        except Exception as exc:  # noqa: BLE001
            return internal_error(exc, func.__name__)
    return wrapped


@dataclass(frozen=True)
class Contract:
    """What a view reads and answers; schemas by their name in chalicelib.schemas."""

    body: Optional[str] = None  # the request body's schema
    answer: Optional[str] = None  # the answer's schema; None: any JSON object
    status: int = 200  # the answer's status
    errors: tuple = ()  # statuses the view itself may answer, besides 413
    query: tuple = ()  # the query parameters it reads (chalicelib/openapi.py's QUERY)
    credentials: Optional[str] = None  # "client": the view checks client credentials itself


def contracts(app, checks=None):
    """The ``@contract(body=, answer=, status=, errors=, query=, credentials=)``
    decorator for ``app``'s views.

    The view is called with the request, the loaded body as ``body`` when
    the contract has one (JSON, or a form on a route whose content_types
    take one: see web.body_object), and its path parameters; what it
    returns is dumped through the answer's schema with the declared status
    (a Response, such as a page, passes as it is). The declaration stays on
    the wrapped view as ``contract``, for the document.

    ``checks`` maps each kind of ``credentials`` to a function of the
    request that raises when they are missing or wrong. A view with
    credentials checks them itself (with the work it does anyway), but a
    body it cannot read never reaches it: the check then runs first, so
    wrong credentials get their 401 before any 400 or 422 of the body.
    """
    checks = checks or {}

    def contract(body=None, answer=None, status=200, errors=(), query=(), credentials=None):
        declared = Contract(body, answer, status, tuple(errors), tuple(query), credentials)

        def decorate(view):
            @functools.wraps(view)
            def shaped(*args, **kwargs):
                request = app.current_request
                if body is not None:
                    try:
                        kwargs["body"] = load(body, request)
                    except (BadRequest, ValidationFailed):
                        if credentials:
                            checks[credentials](request)
                        raise
                result = view(request, *args, **kwargs)
                if isinstance(result, Response):
                    return result
                if answer is not None:
                    result = dump(answer, result)
                return Response(body=result, status_code=status)

            # Client credentials make the route an OAuth endpoint.
            answered = handled(shaped, oauth=credentials is not None)
            answered.contract = declared
            return answered
        return decorate
    return contract


def dump(name, value):
    return schema(name).dump(value)
