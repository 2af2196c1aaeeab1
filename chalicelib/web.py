"""The HTTP edge: reading requests and turning errors into responses.

Each view in app.py declares its contract once, with ``@contract``: the
body it reads, the answer it gives, the errors it may give itself. The
decorator loads the body, shapes the answer, and wraps the view in
:func:`handled`, the single place where a ServiceError becomes the
contract's error body (its status from :data:`STATUS`), and where anything
unexpected becomes a bare 500 with no trace. chalicelib/openapi.py documents every route from Chalice's
route table and these declarations.

Schemas are named, not imported, and the marshmallow schemas are loaded on
first use: the authorizer runs from the same app.py, and its cold start has
no use for them.
"""
import base64
import functools
import json
import logging
import re
import urllib.parse
from dataclasses import dataclass
from typing import Optional

from chalice import Response

from chalicelib import audit, config, cursor, errors
from chalicelib.errors import BadRequest, NotUtf8, PayloadTooLarge, ServiceError, ValidationFailed
from chalicelib.identity import Identity, Origin
from chalicelib.rules import DESCRIPTION_LENGTH, MAX_BODY_BYTES, PAGE_SIZE, PREFIX

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
    errors.PayloadTooLarge: 413,
    errors.ValidationFailed: 422,
    errors.TooManyAttempts: 429,
    errors.ServiceUnavailable: 503,
}


# The challenge of a 401 that the app itself answers (RFC 7235): client
# credentials are HTTP Basic (RFC 7617, which asks for a realm).
CHALLENGES = {errors.InvalidClient: f'Basic realm="{config.SERVICE_NAME}"'}


def status(error):
    """The HTTP status of a ServiceError."""
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def error_response(error):
    """The contract's answer to ``error``: its body, its status, and a
    Retry-After (whole seconds) where waiting helps (429 and 503)."""
    payload = {"error": error.code, "message": error.message}
    if error.fields is not None:
        payload["fields"] = error.fields
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
    # quote request data (a token, a password) and logs outlive requests.
    audit.event("unhandled_error", level=logging.ERROR, route=route, type=type(exc).__name__)
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


def handled(func):
    """Wrap a view so that it answers every error in the contract's shape."""
    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ServiceError as exc:
            return error_response(exc)
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


def contracts(app):
    """The ``@contract(body=, answer=, status=, errors=, query=, credentials=)``
    decorator for ``app``'s views.

    The view is called with the request, the loaded body as ``body`` when
    the contract has one (JSON, or a form on a route whose content_types
    take one: see :func:`body_object`), and its path parameters; what it returns is dumped
    through the answer's schema with the declared status (a Response, such
    as a page, passes as it is). The declaration stays on the wrapped view
    as ``contract``, for the document.
    """
    def contract(body=None, answer=None, status=200, errors=(), query=(), credentials=None):
        declared = Contract(body, answer, status, tuple(errors), tuple(query), credentials)

        def decorate(view):
            @handled
            @functools.wraps(view)
            def shaped(*args, **kwargs):
                request = app.current_request
                if body is not None:
                    kwargs["body"] = load(body, request)
                result = view(request, *args, **kwargs)
                if isinstance(result, Response):
                    return result
                if answer is not None:
                    result = dump(answer, result)
                return Response(body=result, status_code=status)

            shaped.contract = declared
            return shaped
        return decorate
    return contract


def _fields(messages):
    """marshmallow's messages as ``{field: [message, ...]}``."""
    if isinstance(messages, dict):
        return {name: (m if isinstance(m, list) else [str(m)]) for name, m in messages.items()}
    return {"_body": messages if isinstance(messages, list) else [str(messages)]}


def json_object(request):
    """The request body as a dict, parsed here for the contract's 400 shape.

    UTF-8 only (RFC 8259 section 8.1), decoded strictly before parsing:
    json.loads on bytes would guess UTF-16 or UTF-32, so a body that a
    firewall rule read as UTF-8 could mean something else here. A byte
    order mark is refused too: the RFC lets a parser ignore one, but no
    JSON client needs to send it, and one reading of a body is safer. For
    the same reason a name comes once in each object (RFC 8259 section 4
    leaves duplicates to the parser: json.loads keeps the last, a proxy or
    firewall may read the first), as in a form.
    """
    try:
        text = (request.raw_body or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise NotUtf8() from None
    if text.startswith("\ufeff"):
        raise NotUtf8()
    try:
        data = json.loads(text, object_pairs_hook=_unique_names)
    except (ValueError, RecursionError):
        raise BadRequest() from None
    if not isinstance(data, dict):
        raise BadRequest()
    return data


def _unique_names(pairs):
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ValueError("a name appears twice")
    return data


FORM = "application/x-www-form-urlencoded"
# The content_types of a route that reads a form as well as JSON (RFC 7662's
# requests are forms); any other route takes JSON alone (Chalice's 415).
FORM_OR_JSON = [FORM, "application/json"]
_MAX_FORM_FIELDS = 20
_BAD_FORM = ("The request body must be a form (application/x-www-form-urlencoded) of UTF-8 "
             "text, each field once.")


def form_object(request):
    """An ``application/x-www-form-urlencoded`` body as a dict.

    The body is ASCII, each value's escapes UTF-8 (HTML's form encoding, as
    RFC 6749 appendix B has it), and each name appears at most once (RFC
    6749 section 3.1): anything else is a 400, never a guess.
    """
    try:
        text = (request.raw_body or b"").decode("ascii")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                                       encoding="utf-8", errors="strict",
                                       max_num_fields=_MAX_FORM_FIELDS)
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest(_BAD_FORM) from None
    data = dict(pairs)
    if len(data) != len(pairs):
        raise BadRequest(_BAD_FORM)
    return data


def body_object(request):
    """The body as a dict: a form when the request says so, else JSON.

    Chalice has already refused (415) a type the route does not take, so a
    JSON-only route never gets here with a form.
    """
    media_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    return form_object(request) if media_type == FORM else json_object(request)


@functools.cache
def schema(name):
    """One instance of the schema class ``name`` of chalicelib.schemas."""
    from chalicelib import schemas

    return getattr(schemas, name)()


def load(name, request):
    """The request body, validated by schema ``name``; 422 naming each field."""
    from marshmallow import ValidationError

    try:
        return schema(name).load(body_object(request))
    except ValidationError as exc:
        raise ValidationFailed(_fields(exc.messages)) from None


def dump(name, value):
    return schema(name).dump(value)


PAGED = ("limit", "cursor")  # the query parameters of requested_page


def requested_page(request, listing, owner):
    """The page that ``limit`` and ``cursor`` ask for in ``listing`` (a kind
    of listing, ``self`` or ``admin``) of ``owner``'s items.

    Both are checked before either is refused, so one 422 names each bad
    one. A cursor counts only in the listing that issued it.
    """
    low, high, default = PAGE_SIZE
    scope = cursor.scope(listing, owner)
    bad = {}
    size, raw_cursor = query(request, "limit"), query(request, "cursor")
    if size is None:
        size = default
    elif re.fullmatch(r"[0-9]{1,4}", size) and low <= int(size) <= high:
        size = int(size)
    else:
        bad["limit"] = [f"Must be a whole number from {low} to {high}."]
    before = None if raw_cursor is None else cursor.read(scope, raw_cursor)
    if raw_cursor is not None and before is None:
        bad["cursor"] = ["Not a cursor this listing issued."]
    if bad:
        raise ValidationFailed(bad)
    return cursor.Page(scope=scope, limit=size, before=before)


def flag(request, name):
    """A boolean query parameter: exactly ``true`` or ``false``, default false."""
    raw = query(request, name)
    if raw not in (None, "true", "false"):
        raise ValidationFailed({name: ["Must be true or false."]})
    return raw == "true"


def query(request, name):
    params = request.query_params or {}
    return params.get(name)


def identity(request):
    """The caller, from the context our authorizer put on the request."""
    return Identity.from_context(request.context["authorizer"])


# Far beyond any credentials of ours (a 32-hex id and a 43-character secret).
_MAX_CREDENTIALS = 1024


def client_credentials(request):
    """(client_id, client_secret) from an HTTP Basic ``Authorization`` header
    (RFC 7617), each form-decoded as RFC 6749 section 2.3.1 has clients
    encode them; (None, None) when there are none to read: no header,
    another scheme, bad base64, no colon, or text that is not UTF-8."""
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "basic" or len(value) > _MAX_CREDENTIALS:
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        client_id, colon, secret = decoded.partition(":")
        if colon:
            return (urllib.parse.unquote_plus(client_id, errors="strict"),
                    urllib.parse.unquote_plus(secret, errors="strict"))
    except ValueError:  # binascii.Error and UnicodeDecodeError included
        pass
    return None, None


def client_ip(request):
    return request.context.get("identity", {}).get("sourceIp")


def user_agent(request, limit):
    agent = request.headers.get("user-agent")
    return agent[:limit] if agent else None


def origin(request):
    """Where a request comes from, for the events it causes: the client's
    address and its User-Agent, cut as a token's description is."""
    return Origin(client_ip(request), user_agent(request, DESCRIPTION_LENGTH))
