"""Injecting DynamoDB faults with botocore event hooks.

moto never throttles, never times out and never leaves UnprocessedItems; a
handler on ``before-call`` that returns a response short-circuits the real
call, so each fault path runs for real through the service's own client.
"""
import json

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError


def answer(status, parsed):
    return AWSResponse("https://dynamodb.local/", status, {}, None), parsed


def client_error(code, status=400):
    return answer(status, {"Error": {"Code": code, "Message": "injected"},
                           "ResponseMetadata": {"HTTPStatusCode": status}})


def inject(client, operation, make_reply, times=None):
    """Answer the next ``times`` calls of ``operation`` (all, if None) with
    ``make_reply(params)``; returns the list of params the hook saw."""
    seen = []

    def hook(params, **kwargs):
        if times is not None and len(seen) >= times:
            return None
        seen.append(params)
        return make_reply(params)

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}.{operation}", hook)
    return seen


def timeout(params):
    raise ReadTimeoutError(endpoint_url="https://dynamodb.local/")


def all_unprocessed(params):
    """BatchWriteItem that processed nothing (``params`` is the request dict)."""
    return answer(200, {"UnprocessedItems": json.loads(params["body"])["RequestItems"]})
