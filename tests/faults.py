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


def inject(client, operation, make_reply, times=None, when=None):
    """Answer the next ``times`` calls of ``operation`` (all, if None) with
    ``make_reply(params)``; only those for which ``when(params)`` holds, if
    given. Returns the list of params the hook answered."""
    seen = []

    def hook(params, **kwargs):
        if times is not None and len(seen) >= times:
            return None
        if when is not None and not when(params):
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


def transact_items(params):
    """The TransactItems of a TransactWriteItems request (``params``)."""
    return json.loads(params["body"])["TransactItems"]


def reserves(params):
    """Whether a transaction is a failed-attempt reservation: it counts an
    attempt at a password before bcrypt (an Update of an attempts item)."""
    return any(item.get("Update", {}).get("Key", {}).get("pk", {}).get("S", "").startswith(
        "attempts#") for item in transact_items(params))


def after_the_check(params):
    """Whether a transaction comes after a password check, not before it."""
    return not reserves(params)


def opens_session(params):
    """Whether a transaction is a login's: it puts a token."""
    puts = [item.get("Put", {}).get("Item", {}) for item in transact_items(params)]
    # A token's record, not an event naming a token (events have an event_id).
    return any("token_id" in put and "event_id" not in put for put in puts)


def cancelled(first, rest="None"):
    """A refused transaction: ``first`` the reason of its first item, ``rest``
    that of every other one."""
    def reply(params):
        count = len(transact_items(params))
        return answer(400, {"Error": {"Code": "TransactionCanceledException",
                                      "Message": "injected"},
                            "CancellationReasons": [{"Code": first}] + [{"Code": rest}] * (count - 1),
                            "ResponseMetadata": {"HTTPStatusCode": 400}})
    return reply
