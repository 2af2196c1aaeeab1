"""Every setting the service reads, in one place.

Settings are read from the environment at call time, never at import time:
Chalice lays each stage's ``environment_variables`` over ``os.environ`` per
request in the test client and in ``chalice local``. :func:`check` reads
them all at once, where a bad value must stop the service from starting.
"""
import os
import re
import sys

SERVICE_NAME = "login-service"
VERSION = "1.0.0"


# The shortest signing secret accepted (HS256 wants at least its hash's 32 bytes).
SECRET_MIN_BYTES = 32


class ConfigurationError(RuntimeError):
    """A setting is missing or bad; the message names it (and never a secret)."""


# Whole-number settings: (default, smallest, largest).
WHOLE_NUMBERS = {
    # The tutorial's 48 hours without use; from 1 second, which is how
    # people test expiry.
    "TOKEN_LIFETIME_SECONDS": (172800, 1, 31536000),
    # However much it is used, a token dies this long after its login.
    "TOKEN_MAX_LIFETIME_SECONDS": (2592000, 1, 31536000),
    # 4 is bcrypt's floor and only fit for tests; production keeps 12.
    "BCRYPT_ROUNDS": (12, 4, 16),
    "MAX_TOKENS_PER_USER": (100, 1, 1000),
    # How long the security log keeps an event (DynamoDB TTL), in days.
    "EVENT_RETENTION_DAYS": (90, 1, 3650),
    # How long a link sent by mail works (see chalicelib/link_store.py).
    "RESET_LINK_SECONDS": (3600, 60, 86400),
    "VERIFY_LINK_SECONDS": (86400, 60, 604800),
}


def whole_number(name, default, low, high, env=None):
    """The setting ``name``: ASCII digits only (no sign, space or ``_``)."""
    raw = (os.environ if env is None else env).get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,10}", raw) or not low <= int(raw) <= high:
        shown = raw if len(raw) <= 20 else raw[:20] + "..."
        raise ConfigurationError(f"{name} must be a whole number from {low} to {high}, "
                                 f"not {shown!r}")
    return int(raw)


def _setting(name, env=None):
    return whole_number(name, *WHOLE_NUMBERS[name], env=env)


def check(env=None, secret_required=True):
    """Read every setting once; the first bad one raises ConfigurationError.

    For the places where a bad value must stop everything: `make run`
    (``devserver/serve.py``) before it starts anything, and a Lambda cold start (see
    :func:`check_at_cold_start`), instead of a 500 on every request. The
    signing secret is only checked for presence and length here; one in
    SSM (``JWT_SECRET_PARAMETER``) is read on first use.
    """
    env = os.environ if env is None else env
    for name in WHOLE_NUMBERS:
        _setting(name, env)
    _lifetimes(env)
    if env.get("EMAIL_FROM"):
        _email_from(env["EMAIL_FROM"])
    webauthn_rp_id(env)  # reads PUBLIC_URL too
    if env.get("JWT_SECRET_PARAMETER"):
        return
    if secret_required and not env.get("JWT_SECRET"):
        raise ConfigurationError("JWT_SECRET (or JWT_SECRET_PARAMETER) must be set")
    for name in ("JWT_SECRET", "JWT_PREVIOUS_SECRET"):
        if env.get(name) and len(env[name].encode("utf-8")) < SECRET_MIN_BYTES:
            raise ConfigurationError(f"{name} must be at least {SECRET_MIN_BYTES} bytes")


def in_lambda():
    """Whether this process is a Lambda function (its runtime sets the name)."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def handler():
    """The entry point Lambda runs in this process (its ``_HANDLER``, such
    as ``app.mailer``); None outside Lambda."""
    return os.environ.get("_HANDLER")


def check_at_cold_start():
    """:func:`check`, when this process is a Lambda function.

    Only there is the environment complete at import: chalice local and
    chalice.test.Client lay the stage's ``environment_variables`` over
    os.environ per request, after the import (``devserver/serve.py`` checks
    that merged environment itself before starting chalice local, and tests
    set settings per test). A bad value makes the function's init fail, so
    it never answers at all, rather than a 500 on every request.
    """
    if in_lambda():
        check()


# Set by `make run`'s server (devserver/local_server.py) for the app it serves.
LOCAL_SERVER = "LOGIN_SERVICE_LOCAL_SERVER"
PLAIN_CHALICE_LOCAL = (
    "login-service: run it locally with `make run`, not plain `chalice local`: make run is "
    "chalice local plus what this service needs beside it (an embedded DynamoDB with its "
    "tables, a signing secret, API Gateway's own answers); it serves on http://127.0.0.1:8000")
_CHALICE_OPTIONS_WITH_VALUES = {"--project-dir", "--aws-profile"}


def refuse_plain_chalice_local(argv=None, env=None):
    """Stop a `chalice local` typed by hand, with one line saying what to run.

    Plain `chalice local` has no DynamoDB, no tables and no signing secret
    (stage ``dev`` would read it from SSM), and answers auth failures with
    chalice's own bodies: every login would be a 500 or a 503 with nothing
    to say why. `make run` serves the same app with all of it.
    """
    argv = sys.argv if argv is None else argv
    env = os.environ if env is None else env
    if env.get(LOCAL_SERVER) or not argv or "chalice" not in argv[0].replace("\\", "/"):
        return
    if _chalice_command(argv[1:]) == "local":
        sys.stderr.write(PLAIN_CHALICE_LOCAL + "\n")
        sys.stderr.flush()
        # Not SystemExit: chalice's reloader imports the app on a thread of
        # its worker, where SystemExit would end the thread and leave the
        # process serving nothing; the worker's exit ends chalice too.
        os._exit(2)


def _chalice_command(args):
    """The command of chalice's command line ``args``, past its options."""
    words = iter(args)
    for word in words:
        if word in _CHALICE_OPTIONS_WITH_VALUES:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


# Whole values, in a syntax that CloudFormation's AllowedPattern reads the
# same way (deploy/mail.py).
EMAIL_FROM_PATTERN = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+"
# https, or http for localhost only; a lower-case host (WebAuthn compares it
# as written); no query or fragment.
PUBLIC_URL_PATTERN = r"(https://([a-z0-9.-]+)|http://(localhost))(:[0-9]{1,5})?(/[^\s?#]*)?"


def _email_from(value):
    """EMAIL_FROM: one plain ASCII address (SES sends from a verified
    identity, and a display name or a second address is not one)."""
    if not re.fullmatch(EMAIL_FROM_PATTERN, value):
        raise ConfigurationError("EMAIL_FROM must be one plain address, such as "
                                 f"no-reply@example.com, not {value[:40]!r}")
    return value


def email_from():
    """The sender of every message; required where mail is sent."""
    value = os.environ.get("EMAIL_FROM")
    if not value:
        raise ConfigurationError("EMAIL_FROM must be set where mail is sent")
    return _email_from(value)


def link_seconds(kind):
    """How long a link of ``kind`` ("reset" or "verify") works."""
    return _setting(f"{kind.upper()}_LINK_SECONDS")


def users_table():
    return os.environ.get("USERS_TABLE", f"{SERVICE_NAME}-local-users")


def mail_table():
    return os.environ.get("MAIL_TABLE", f"{SERVICE_NAME}-local-mail")


def tokens_table():
    return os.environ.get("TOKENS_TABLE", f"{SERVICE_NAME}-local-tokens")


def events_table():
    return os.environ.get("EVENTS_TABLE", f"{SERVICE_NAME}-local-events")


def _lifetimes(env=None):
    """(idle lifetime, cap): a cap below the lifetime would make the
    lifetime a lie, so it is refused rather than silently lowered."""
    idle = _setting("TOKEN_LIFETIME_SECONDS", env)
    default, low, high = WHOLE_NUMBERS["TOKEN_MAX_LIFETIME_SECONDS"]
    # Unset, the cap is at least the lifetime: a lifetime over 30 days set
    # before there was a cap keeps working, as the fixed lifetime it was.
    cap = whole_number("TOKEN_MAX_LIFETIME_SECONDS", max(default, idle), low, high, env)
    if cap < idle:
        raise ConfigurationError(f"TOKEN_MAX_LIFETIME_SECONDS ({cap}) must be at least "
                                 f"TOKEN_LIFETIME_SECONDS ({idle})")
    return idle, cap


def event_retention_days():
    return _setting("EVENT_RETENTION_DAYS")


def token_lifetime_seconds():
    """How long a token lives without use."""
    return _lifetimes()[0]


def token_max_lifetime_seconds():
    """How long a token lives after its login, however much it is used."""
    return _lifetimes()[1]


def bcrypt_rounds():
    return _setting("BCRYPT_ROUNDS")


def max_tokens_per_user():
    return _setting("MAX_TOKENS_PER_USER")


def last_used_resolution_seconds():
    """How stale ``last_used_at`` may get before the authorizer rewrites it
    (and, with it, moves the token's expiry forward).

    At most 5 minutes (the contract's resolution) and a tenth of the
    lifetime, so that the expiry written with a use is never more than a
    tenth of the lifetime short of "lifetime after the last use". Whole
    seconds: the authorizer writes when ``last_used_at`` (whole seconds) is
    below the current whole second minus this window. A token used
    continuously is then still alive at its next write only while the
    window is at most the lifetime minus 2 (one second for the window's
    own rounding, one for the truncated write time), so below 3 seconds
    of lifetime the window is 0 (a write at each new second) rather than
    the 1-second floor; a 1-second lifetime cannot slide at all.
    """
    lifetime = token_lifetime_seconds()
    return max(0, min(300, max(1, lifetime // 10), lifetime - 2))


def public_url(env=None):
    """The sessions page's address, ``PUBLIC_URL``, ending with ``/``: mailed
    links lead to it, and passkeys are bound to its origin. https, or http
    for localhost only (a link's secret must not cross a network in clear).
    Under `make run` ``http://localhost:$PORT/`` by default, a name rather
    than 127.0.0.1, since WebAuthn refuses an IP address as a relying party
    id; a deployed function has no default (a link to localhost would
    reach nobody)."""
    env = os.environ if env is None else env
    url = env.get("PUBLIC_URL")
    if not url:
        if in_lambda():
            raise ConfigurationError("PUBLIC_URL must be set in a deployed stage")
        url = f"http://localhost:{env.get('PORT') or 8000}/"
    match = re.fullmatch(PUBLIC_URL_PATTERN, url)
    if not match or not (match.group(2) or match.group(3)).strip("."):
        shown = url if len(url) <= 60 else url[:60] + "..."
        raise ConfigurationError(f"PUBLIC_URL must be an https URL (http only for localhost) "
                                 f"with a lower-case host name and no query or fragment, "
                                 f"not {shown!r}")
    return url if url.endswith("/") else url + "/"


def webauthn_origin(env=None):
    """The origin that passkeys' client data must name: PUBLIC_URL's."""
    scheme, rest = public_url(env).split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def webauthn_rp_id(env=None):
    """``WEBAUTHN_RP_ID``, default the host of PUBLIC_URL; it must be that
    host or a parent domain of it (WebAuthn's rule), never an IP address."""
    env = os.environ if env is None else env
    host = webauthn_origin(env).split("://", 1)[1].split(":", 1)[0]
    rp_id = env.get("WEBAUTHN_RP_ID") or host
    if re.fullmatch(r"[0-9.]+", rp_id) or not (host == rp_id or host.endswith("." + rp_id)):
        raise ConfigurationError(f"WEBAUTHN_RP_ID must be the host of PUBLIC_URL ({host}) or a "
                                 f"parent domain of it, and not an IP address")
    return rp_id


def region():
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
