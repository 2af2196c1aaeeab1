"""Reading requests: bodies (JSON or a form, validated by a named schema),
pages, flags, the caller's identity, client credentials and the request's
origin. Each turns bad input into the contract's 400 or 422 (errors.py);
contract.py answers them.

Schemas are named, not imported, and the marshmallow schemas are loaded on
first use: the authorizer runs from the same app.py, and its cold start has
no use for them.
"""
import base64
import functools
import json
import re
import urllib.parse

from chalicelib import cursor
from chalicelib.errors import BadRequest, NotUtf8, TwoClientMethods, ValidationFailed
from chalicelib.identity import Identity, Origin
from chalicelib.plain_text import plain
from chalicelib.terms import DESCRIPTION_LENGTH, PAGE_SIZE

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
    """(client_id, client_secret) from the one method the client used: HTTP
    Basic (RFC 7617, each part form-decoded as RFC 6749 section 2.3.1 has
    clients encode them) or ``client_id`` and ``client_secret`` in the body
    (client_secret_post). TwoClientMethods when the body names either and an
    ``Authorization`` header comes too. A part that cannot be read (bad
    base64, no colon, not UTF-8 or not text, a body that is no form or
    JSON object) is None, which no client matches."""
    header = request.headers.get("authorization") or ""
    try:
        body = body_object(request)
    except BadRequest:  # NotUtf8 included: the body's error is the view's to tell
        body = {}
    if "client_id" in body or "client_secret" in body:
        if header:
            raise TwoClientMethods()
        return _readable(body.get("client_id")), _readable(body.get("client_secret"))
    return _basic(header)


def _readable(value):
    # The body's size is bounded already (contract.edge): no cap of our own.
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")  # a JSON string may hold a lone surrogate
    except UnicodeEncodeError:
        return None
    return value


def _basic(header):
    scheme, _, value = header.partition(" ")
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
    """The request's User-Agent, cut to ``limit`` characters, without the
    characters that would hide or disguise text (see plain_text.py); None
    when nothing is left."""
    # Plain again after the cut, which may end inside a flag's tags.
    agent = plain(plain(request.headers.get("user-agent") or "")[:limit])
    return agent or None


def origin(request):
    """Where a request comes from, for the events it causes: the client's
    address and its User-Agent, cut as a token's description is."""
    return Origin(client_ip(request), user_agent(request, DESCRIPTION_LENGTH))
