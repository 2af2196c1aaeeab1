"""The one place AWS clients are made: lazily, once per process.

A warm Lambda reuses the client (and its connection pool) across
invocations; nothing is created at import time, so a cold start that never
touches DynamoDB (a bad signature, say) pays nothing for it.
"""
import functools

from chalicelib import cold_start, config

with cold_start.without_cryptography():  # botocore would load pyOpenSSL: see cold_start
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (ClientError, CredentialRetrievalError, NoCredentialsError,
                                     NoRegionError, PartialCredentialsError, ProfileNotFound)

# Retries and timeouts are set here rather than left to whatever the botocore
# version in the Lambda runtime defaults to.
MAX_ATTEMPTS = 3  # each call's attempts, the first included
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    # Worst case, three attempts of 1 s + 2 s stay inside the functions'
    # timeouts (see .chalice/config.json).
    connect_timeout=1,
    read_timeout=2,
    tcp_keepalive=True,
)


@functools.cache
def _session():
    # One session per process: it caches the loaded service models, which
    # are most of what creating a client costs.
    return boto3.session.Session()


@functools.cache
def _client(service):
    # Endpoints come from AWS_ENDPOINT_URL_<SERVICE> when set (the embedded
    # DynamoDB of `make run`), which botocore reads itself.
    return _session().client(service, region_name=config.region(), config=_CLIENT_CONFIG)


def dynamodb():
    return _client("dynamodb")


def ssm():
    return _client("ssm")


def sesv2():
    return _client("sesv2")


# Error codes that mean this function may not make the call (its role, its
# credentials, a KMS key it may not use): a deployment's mistake, which no
# retry mends, never an outage.
_REFUSED = ("AccessDenied", "UnrecognizedClient", "InvalidClientTokenId", "InvalidSignature",
            "SignatureDoesNotMatch", "IncompleteSignature", "MissingAuthenticationToken",
            "ExpiredToken", "KMS", "InvalidKeyId")
_NO_IDENTITY = (NoCredentialsError, PartialCredentialsError, NoRegionError, ProfileNotFound,
                CredentialRetrievalError)


def misconfigured(exc, call, resource):
    """A ConfigurationError naming ``call`` (service and operation), the
    ``resource`` and the cause, when ``exc`` says this function may not make
    the call or has no identity to make it with; None for anything else."""
    if isinstance(exc, ClientError):
        cause = exc.response.get("Error", {}).get("Code", "")
        if not cause.startswith(_REFUSED):
            return None
    elif isinstance(exc, _NO_IDENTITY):
        cause = type(exc).__name__
    else:
        return None
    return config.ConfigurationError(
        f"{call} on {resource} was refused ({cause}): check the function's credentials, its "
        "IAM policy and the KMS key")


def reset():
    """Forget cached clients (tests build a fresh mocked world each time)."""
    _client.cache_clear()
