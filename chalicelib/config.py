"""Every setting the service reads, in one place.

Settings are read from the environment at call time, never at import time:
Chalice lays each stage's ``environment_variables`` over ``os.environ`` per
request in the test client and in ``chalice local``, and a Lambda may be
configured after the module was imported.
"""
import os

SERVICE_NAME = "login-service"
VERSION = "1.0.0"


class ConfigurationError(RuntimeError):
    """The deployment is missing a setting the service cannot run without."""


def _int(name, default, low, high):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}")
    return value


def users_table():
    return os.environ.get("USERS_TABLE", "login-service-local-users")


def tokens_table():
    return os.environ.get("TOKENS_TABLE", "login-service-local-tokens")


def token_lifetime_seconds():
    return _int("TOKEN_LIFETIME_SECONDS", 172800, 60, 31536000)


def bcrypt_rounds():
    # 4 is bcrypt's floor and only fit for tests; production keeps 12.
    return _int("BCRYPT_ROUNDS", 12, 4, 16)


def max_tokens_per_user():
    return _int("MAX_TOKENS_PER_USER", 100, 1, 1000)


def last_used_resolution_seconds():
    """How stale ``last_used_at`` may get before the authorizer rewrites it."""
    return 300


def region():
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
