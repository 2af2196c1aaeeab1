"""What goes in and what comes out, as marshmallow schemas.

Input schemas refuse unknown fields (a typo such as ``pasword`` is an error,
not a silently missing value) and strings that are not valid Unicode (a lone
surrogate from a ``\\ud800`` escape cannot be hashed or stored). Secrets are
load-only, so a dump can never put one in a response.
"""
import unicodedata

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chalicelib import passwords
from chalicelib.plain_text import is_plain
from chalicelib.terms import (DESCRIPTION_LENGTH, EVENT_ACTORS, EVENT_TYPES, LOGIN_METHODS,
                              MFA_METHODS)
from chalicelib.usernames import USERNAME

PASSWORD_LENGTH = validate.Length(min=8, max=1024)


class Text(fields.String):
    """A JSON string that is valid Unicode (no lone surrogates)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Not valid Unicode text.") from None
        return text


def _plain(value):
    if not is_plain(value):
        raise ValidationError("Must not hold control, formatting or separator characters.")


def _username(value):
    if not USERNAME.fullmatch(value):
        raise ValidationError("Use 3 to 32 characters: letters, digits, _ . -")


def _plain_email(value):
    """What marshmallow's Email lets through, and an address must not hold.

    marshmallow accepts any Unicode letter in a domain, so a Kelvin sign,
    fullwidth letters or a soft hyphen would be stored as typed: a second
    spelling of a domain (or of a mailbox) that reads the same. Whatever
    NFKC changes is refused, and a non-ASCII domain must be valid IDNA that
    IDNA leaves as it is, but for case. Python's own "idna" codec decides
    (IDNA 2003): the Lambda runtime has no IDNA 2008 package, and a domain
    on which the two disagree (``ß``, a final sigma) is refused either way.
    The address is kept as typed.
    """
    local, at, domain = value.rpartition("@")
    if not at:
        return  # the Email validator has said so already
    if unicodedata.normalize("NFKC", domain) != domain:
        raise ValidationError("Type the domain in its plain form: it holds lookalike characters "
                              "(such as a Kelvin sign or fullwidth letters).")
    if not local.isascii():
        # Amazon SES sends to 7-bit ASCII before the @ only (no SMTPUTF8):
        # such an address could never get its verification or reset link.
        raise ValidationError("Use an address with only ASCII characters before the @: mail "
                              "cannot be delivered to this one.")
    if unicodedata.normalize("NFKC", local) != local:
        raise ValidationError("Type the part before @ in its plain form: it holds lookalike "
                              "characters (such as a Kelvin sign or fullwidth letters).")
    if not domain.isascii():
        try:
            same = domain.encode("idna").decode("idna").lower() == domain.lower()
        except UnicodeError:
            same = False
        if not same:
            raise ValidationError("The domain is not a valid internationalised domain name "
                                  "in its plain form.")


def _not_common(value):
    if passwords.is_common(value):
        raise ValidationError("This password is one of the most common ones; choose another.")


def Password(**kwargs):
    """A new password: 8 to 1024 characters, not a common one."""
    return Text(required=True, load_only=True, validate=[PASSWORD_LENGTH, _not_common], **kwargs)


def NonEmpty(**kwargs):
    return Text(required=True, validate=validate.Length(min=1), **kwargs)


def Email(**kwargs):
    """An address: valid, at most 254 characters, in its plain form."""
    return fields.Email(required=True, validate=[validate.Length(max=254), _plain_email],
                        **kwargs)


class SignupIn(Schema):
    username = Text(required=True, validate=_username,
                    metadata={"pattern": f"^{USERNAME.pattern}$"})
    email = Email()
    password = Password()


class LoginIn(Schema):
    username = NonEmpty()
    password = NonEmpty(load_only=True)
    description = Text(allow_none=True, load_default=None,
                       validate=[validate.Length(max=DESCRIPTION_LENGTH), _plain])


class PasswordChangeIn(Schema):
    current_password = NonEmpty(load_only=True)
    new_password = Password()


class AccountDeleteIn(Schema):
    password = NonEmpty(load_only=True)


class EmailChangeIn(Schema):
    password = NonEmpty(load_only=True)
    new_email = Email()


class ForgotIn(Schema):
    email = Email()


def Link(**kwargs):
    return Text(required=True, load_only=True, validate=validate.Length(min=1, max=200),
                    metadata={"description": "The secret after `#verify=` or `#reset=` in the "
                                             "link that was mailed."}, **kwargs)


class VerifyIn(Schema):
    token = Link()


class ResetIn(Schema):
    token = Link()
    new_password = Password()
class PasswordIn(Schema):
    password = NonEmpty(load_only=True)


def Code():
    return Text(required=True, load_only=True, validate=validate.Length(min=1, max=64),
                metadata={"description": "A 6-digit TOTP code."})


class CodeIn(Schema):
    code = Code()


class PasswordAndCodeIn(Schema):
    password = NonEmpty(load_only=True)
    code = Code()


def Credential(**kwargs):
    """A WebAuthn credential as the browser's toJSON() gives it; the
    library that verifies it reads its fields."""
    return fields.Dict(keys=fields.String(), load_only=True, **kwargs)


class MfaIn(Schema):
    """The second step: exactly one of code, recovery_code, credential."""

    mfa_token = NonEmpty(load_only=True)
    code = Text(load_only=True, validate=validate.Length(min=1, max=64))
    recovery_code = Text(load_only=True, validate=validate.Length(min=1, max=64))
    credential = Credential()

    @validates_schema
    def _one_factor(self, data, **kwargs):
        given = [name for name in ("code", "recovery_code", "credential") if name in data]
        if len(given) != 1:
            message = "Give exactly one of code, recovery_code and credential."
            raise ValidationError({name: [message] for name in given or ["code"]})


class PasskeyOptionsIn(Schema):
    mfa_token = Text(load_only=True, load_default=None, validate=validate.Length(min=1))


class PasskeyLoginIn(Schema):
    challenge_id = Text(required=True, validate=validate.Length(min=1, max=64))
    credential = Credential(required=True)
    description = Text(allow_none=True, load_default=None,
                       validate=[validate.Length(max=DESCRIPTION_LENGTH), _plain])


class PasskeyAddIn(Schema):
    challenge_id = Text(required=True, validate=validate.Length(min=1, max=64))
    credential = Credential(required=True)
    name = Text(required=True, validate=[validate.Length(min=1, max=DESCRIPTION_LENGTH), _plain])


class IntrospectIn(Schema):
    """RFC 7662's request, as a form or as JSON."""

    token = NonEmpty(load_only=True)
    # RFC 7662 lets a client hint at the kind of token; there is one kind.
    token_type_hint = Text(load_only=True, load_default=None)
    # client_secret_post (RFC 6749 section 2.3.1), read by web.client_credentials.
    client_id = Text(load_only=True)
    client_secret = Text(load_only=True)


# Output schemas: every field is always present (required, so that a client
# generated from the document types it as a plain value) and null only where
# it says allow_none. Times are the contract's ISO-8601 strings in UTC.
def Out(field=fields.String, **kwargs):
    return field(required=True, **kwargs)


def Time(metadata=None, **kwargs):
    return Out(metadata={"format": "date-time", **(metadata or {})}, **kwargs)


class UserOut(Schema):
    id = Out()
    username = Out()
    email = Out()
    email_verified = Out(fields.Boolean, metadata={
        "description": "Whether a link mailed to the address was used (or an operator "
                       "checked it another way)."})
    roles = Out(fields.List, cls_or_instance=fields.String())
    created_at = Time()


class TokenOut(Schema):
    id = Out()
    description = Out(allow_none=True)
    ip = Out(allow_none=True)
    created_at = Time()
    expires_at = Time(metadata={"description": "The current expiry: each use moves it "
                                               "forward, never past the cap."})
    last_used_at = Time(allow_none=True)
    current = Out(fields.Boolean)


class TokenPageOut(Schema):
    tokens = Out(fields.List, cls_or_instance=fields.Nested(TokenOut))
    next_cursor = Out(allow_none=True, metadata={"description": "null on the last page"})


class EventOut(Schema):
    id = Out()
    type = Out(metadata={"enum": list(EVENT_TYPES)})
    created_at = Time()
    ip = Out(allow_none=True, metadata={"description": "The address of the request that caused "
                                                       "it; null for an operator's command."})
    device = Out(allow_none=True, metadata={"description": "The login's description, or the "
                                                           "User-Agent of the request."})
    by = Out(metadata={"enum": list(EVENT_ACTORS), "description": "Who acted: the user, an admin, an "
                                                        "operator, the service itself, or a "
                                                        "request not proven to be the user's."})
    token_id = Out(allow_none=True, metadata={"description": "The token concerned."})
    method = Out(allow_none=True, metadata={"enum": list(LOGIN_METHODS) + [None],
                                            "description": "How a login was made; null for "
                                                           "every other type."})


class EventPageOut(Schema):
    events = Out(fields.List, cls_or_instance=fields.Nested(EventOut))
    next_cursor = Out(allow_none=True, metadata={"description": "null on the last page"})


class LoginOut(Schema):
    token = Out()
    token_type = Out(metadata={"enum": ["Bearer"]})
    token_id = Out()
    expires_at = Time(metadata={"description": "The expiry without further use."})
    expires_in = Out(fields.Integer, metadata={"description": "Seconds until expires_at."})


class PasskeyOut(Schema):
    id = Out()
    name = Out()
    created_at = Time()
    last_used_at = Time(allow_none=True)


class MfaOut(Schema):
    totp = Out(fields.Boolean)
    passkeys = Out(fields.List, cls_or_instance=fields.Nested(PasskeyOut))
    recovery_codes_left = Out(fields.Integer)


class TotpSetupOut(Schema):
    secret = Out(metadata={"description": "The base32 secret, for typing into an app."})
    otpauth_uri = Out()
    qr_svg = Out(metadata={"description": "otpauth_uri as a QR code: an SVG document."})


class RecoveryCodesOut(Schema):
    recovery_codes = Out(fields.List, cls_or_instance=fields.String(),
                         metadata={"description": "Shown this once; each works once."})


class TotpOffOut(Schema):
    totp = Out(fields.Boolean, metadata={"enum": [False]})


class ChallengeOut(Schema):
    challenge_id = Out()
    options = Out(fields.Dict, metadata={
        "description": "PublicKeyCredentialCreationOptions or PublicKeyCredentialRequestOptions "
                       "as JSON (binary fields in base64url)."})


class RemovedOut(Schema):
    deleted = Out(fields.Boolean, metadata={"enum": [True]})


class RevokedOut(Schema):
    revoked = Out(fields.Integer, metadata={"description": "How many live tokens were revoked."})


class DeletedOut(Schema):
    deleted = Out(fields.Boolean)
    revoked = Out(fields.Integer)


class SentOut(Schema):
    sent = Out(fields.Boolean, metadata={
        "description": "Always true: the same answer whether or not mail goes out."})


class ServiceOut(Schema):
    service = Out()
    version = Out()


class Introspection(Schema):
    """RFC 7662's answer: ``{"active": false}`` alone for anything that is
    not a live token (whatever the reason), every field for a live one."""

    active = Out(fields.Boolean)
    sub = fields.String(metadata={"description": "The user's id."})
    username = fields.String()
    roles = fields.List(fields.String(), metadata={"description": "The user's current roles."})
    jti = fields.String(metadata={"description": "The token's id (the Token's `id`)."})
    iat = fields.Integer(metadata={"description": "Issued at, in epoch seconds."})
    exp = fields.Integer(metadata={"description": "When the token dies without further use, "
                                                  "in epoch seconds."})
    token_type = fields.String(metadata={"enum": ["Bearer"]})


class Error(Schema):
    """Every error: the app's own, and API Gateway's (Gateway Responses)."""

    error = Out(metadata={"description": "A snake_case code, such as access_denied."})
    message = Out(metadata={"description": "One human sentence."})
    fields_ = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                          data_key="fields",
                          metadata={"description": "On 422 only: each offending field's messages."})
    mfa_token = fields.String(metadata={
        "description": "On mfa_required only: the second step's token (300 s, works once)."})
    methods = fields.List(fields.String(metadata={"enum": list(MFA_METHODS)}),
                          metadata={"description": "On mfa_required only: the ways the second "
                                                   "step can be made."})
    error_description = fields.String(metadata={
        "description": "On introspection's 400 and 401 only: `message` again, where RFC 6749 "
                       "(section 5.2) has OAuth clients read it."})
