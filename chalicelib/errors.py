"""The service's error vocabulary: what went wrong, in the service's terms.

Each error has a snake_case ``code`` and a ``message`` safe to show a
client. None of them knows about HTTP: contract.py maps each to its status,
once.
"""
from chalicelib.terms import MAX_BODY_BYTES


class ServiceError(Exception):
    """An error the client caused or may act on; its text is safe to show."""

    code = "bad_request"
    message = "The request could not be processed."

    def __init__(self, message=None, code=None, fields=None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.fields = fields


class BadRequest(ServiceError):
    code = "invalid_body"
    message = "The request body must be a JSON object."


class NotUtf8(BadRequest):
    message = "The request body must be UTF-8 JSON, without a byte order mark."


class ValidationFailed(ServiceError):
    code = "validation_failed"
    message = "Some fields are invalid."

    def __init__(self, fields, message=None):
        super().__init__(message=message, fields=fields)


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    message = f"The request body is larger than {MAX_BODY_BYTES // 1024} KB."


class InvalidCredentials(ServiceError):
    """A login that does not match, whatever did not."""

    code = "invalid_credentials"
    message = "The username or password is incorrect."


class WrongPassword(ServiceError):
    """The caller's own password, checked again by a password route."""

    code = "invalid_credentials"
    message = "The password is incorrect."


class InvalidClient(ServiceError):
    """Introspection: client credentials missing, malformed, unknown or wrong."""

    code = "invalid_client"
    message = "Client authentication failed."


class TwoClientMethods(ServiceError):
    """Introspection: client credentials sent two ways at once (RFC 6749
    section 2.3 allows one method per request)."""

    code = "invalid_request"
    message = ("Authenticate the client one way: HTTP Basic, or client_id and client_secret "
               "in the body, not both.")


class ClientNotFound(ServiceError):
    code = "client_not_found"
    message = "No such client."


class Forbidden(ServiceError):
    code = "forbidden"
    message = "This action needs the admin role."


class TokenNotFound(ServiceError):
    code = "token_not_found"
    message = "No such live token for this user."


class UserNotFound(ServiceError):
    code = "user_not_found"
    message = "No such user."


class Conflict(ServiceError):
    """A name or address that belongs to another account."""


class UsernameTaken(Conflict):
    code = "username_taken"
    message = "That username is taken."


class EmailTaken(Conflict):
    code = "email_taken"
    message = "That email is already registered."


class AlreadyVerified(Conflict):
    code = "already_verified"
    message = "This address is already verified."


class InvalidLink(ServiceError):
    """A link from a mail that is unknown, used, expired or superseded:
    one answer for all, so that a link tells nothing but that it failed."""

    code = "invalid_link"
    message = "This link is not valid any more; ask for a new one."


class TooManyAttempts(ServiceError):
    code = "too_many_attempts"
    message = "Too many failed logins for this username; wait and try again."

    def __init__(self, retry_after):
        super().__init__()
        self.retry_after = retry_after


class ServiceUnavailable(ServiceError):
    """Storage (or SSM) is busy or broken right now. ``cause`` says why, for
    the one log line every 503 gets: the operation, the error code or
    timeout, the attempts made; never request data."""

    code = "service_unavailable"
    message = "The service is briefly unavailable; try again."

    def __init__(self, message=None, retry_after=1, **cause):
        super().__init__(message=message)
        self.retry_after = retry_after
        self.cause = cause


class MfaRequired(ServiceError):
    """A right password of a user with a second factor: the login goes on
    at /login/mfa with ``mfa_token``, by one of ``methods``."""

    code = "mfa_required"
    message = "A second factor is needed to finish this login."

    def __init__(self, mfa_token, methods):
        super().__init__()
        self.details = {"mfa_token": mfa_token, "methods": list(methods)}


class InvalidCode(ServiceError):
    """A one-time code (TOTP or recovery) or a second step's passkey that
    does not match."""

    code = "invalid_code"
    message = "The code is not valid."


class InvalidMfaToken(ServiceError):
    """Unknown, used, expired or out of attempts: one answer."""

    code = "invalid_mfa_token"
    message = "This second step is over; log in with the password again."


class InvalidCredential(ServiceError):
    """A passkey registration that does not verify."""

    code = "invalid_credential"
    message = "The passkey could not be registered."


class ReauthenticationRequired(ServiceError):
    """A change that outlives every token (a passkey logs in on its own)
    asks for a recent login, not only for a token."""

    code = "reauthentication_required"
    message = "Sign in again to add a passkey: the session is more than ten minutes old."


class PasskeyNotFound(ServiceError):
    code = "passkey_not_found"
    message = "No such passkey for this user."


class FactorConflict(ServiceError):
    """A second factor in a state that does not allow the change."""


class TotpEnabled(FactorConflict):
    code = "totp_enabled"
    message = "TOTP is already enabled; disable it first."


class TotpNotPending(FactorConflict):
    code = "totp_not_pending"
    message = "No TOTP setup is waiting for confirmation."


class TotpNotEnabled(FactorConflict):
    code = "totp_not_enabled"
    message = "TOTP is not enabled."
