"""Where the JWT signing secrets come from.

Deployed stages name an SSM Parameter Store SecureString in
``JWT_SECRET_PARAMETER``; its latest version is the current secret and the
version before it is still accepted, so rolling the secret (a new version of
the parameter) logs nobody out. The parameter is read once per cold start.
Locally, and in the tests, ``JWT_SECRET`` (and ``JWT_PREVIOUS_SECRET``)
come straight from the environment.

There is deliberately no default: a deployment that forgot its secret fails
closed instead of signing with a value that is public in this repository.
"""
import functools
import hashlib
import hmac
import os

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws, config
from chalicelib.config import SECRET_MIN_BYTES as MIN_BYTES, ConfigurationError
from chalicelib.errors import ServiceUnavailable

def secrets():
    """The current secret, then the previous one if there is one."""
    name = os.environ.get("JWT_SECRET_PARAMETER")
    if name:
        return _read_parameter(name)
    found = (os.environ.get("JWT_SECRET", ""), os.environ.get("JWT_PREVIOUS_SECRET", ""))
    return _checked(found)


def derived_key(label):
    """A key of its own for ``label``, derived from the current secret.

    Each use (log name hashes, the attempts items' keys) has a fixed label,
    so no derived value can stand in for another use's, or for anything the
    secret itself signs. A rotation changes every derived key.
    """
    return _derive(secrets()[0], label)


@functools.cache
def _derive(secret, label):
    return hmac.new(secret.encode("utf-8"), label, hashlib.sha256).digest()


def _checked(found):
    if len(found[0].encode("utf-8")) < MIN_BYTES:
        raise ConfigurationError(f"the signing secret must be at least {MIN_BYTES} bytes")
    return tuple(s for s in found if len(s.encode("utf-8")) >= MIN_BYTES)


@functools.cache
def _read_parameter(name):
    # Once per process; a failure is not cached (functools.cache keeps only
    # answers), so the next request tries again.
    ssm = aws.ssm()
    try:
        current = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        found = [current["Value"]]
        if current["Version"] > 1:
            previous = f"{name}:{current['Version'] - 1}"
            try:
                found.append(ssm.get_parameter(Name=previous, WithDecryption=True)["Parameter"]["Value"])
            except ssm.exceptions.ParameterVersionNotFound:
                pass  # history keeps 100 versions; older ones are simply gone
    except ssm.exceptions.ParameterNotFound:
        raise ConfigurationError(f"SSM parameter {name} does not exist") from None
    except (ClientError, BotoCoreError) as exc:
        refused = aws.misconfigured(exc, "SSM GetParameter", f"parameter {name}")
        if refused:
            raise refused from None
        if isinstance(exc, BotoCoreError):
            raise ServiceUnavailable(operation="ssm.get_parameter", code=type(exc).__name__,
                                     attempts=aws.MAX_ATTEMPTS) from None
        raise ServiceUnavailable(
            operation="ssm.get_parameter", code=exc.response.get("Error", {}).get("Code", ""),
            attempts=exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1,
        ) from None
    return _checked(found + [""])


def check_at_cold_start():
    """In a Lambda function with ``JWT_SECRET_PARAMETER``, read the secret at
    once: a parameter that does not exist, or that the function's role (or
    KMS key) may not read, stops the function's init with its reason before
    any request, rather than failing every request. An outage is left for
    the first request to meet (and retry)."""
    if config.in_lambda() and os.environ.get("JWT_SECRET_PARAMETER"):
        try:
            secrets()
        except ServiceUnavailable:
            pass


def forget():
    """Drop the cached parameter (tests; a rotation simply waits for new containers)."""
    _read_parameter.cache_clear()
