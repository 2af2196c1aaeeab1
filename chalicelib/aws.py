"""The one place AWS clients are made: lazily, once per process.

A warm Lambda reuses the client (and its connection pool) across
invocations; nothing is created at import time, so a cold start that never
touches DynamoDB (a bad signature, say) pays nothing for it.
"""
import functools

import boto3
from botocore.config import Config

from chalicelib import config

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


def reset():
    """Forget cached clients (tests build a fresh mocked world each time)."""
    _client.cache_clear()
