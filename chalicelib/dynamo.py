"""DynamoDB calls, with their error codes turned into the service's own:
the driver under the stores and their unit of work (unit_of_work.py).

Every call of the service goes through :func:`call`, so that a throttle, a
5xx or a timeout becomes a 503 ``service_unavailable`` in one place, a
missing table a loud configuration error, and a failed condition an
exception the stores can name. Beside it: paging (:func:`every`,
:func:`newest_unexpired`), batches, and :func:`read`, the reads of several
stores in one call.
"""
import logging
import random
import time
from collections import namedtuple

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import audit, aws
from chalicelib.config import ConfigurationError
from chalicelib.errors import ServiceUnavailable

# Codes that mean "DynamoDB is busy or broken right now", not "your call is
# wrong". Anything else is a bug of ours and is left to surface as one.
_UNAVAILABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
    "TransactionInProgressException",
}
_THROTTLED = {"ThrottlingError", "ProvisionedThroughputExceeded"}
BATCH_WRITE_LIMIT = 25


class ConditionFailed(Exception):
    """A conditional write found the item not as expected; ``item`` is the
    item as it then was, when the call asked for it (None if absent)."""

    def __init__(self, item=None):
        super().__init__()
        self.item = item


class Contended(ServiceUnavailable):
    """A write met a transaction in progress on its item (a transaction:
    kept meeting other transactions, however often it was retried).

    A 503 wherever nobody expects it; a compare-and-swap loop may take it as
    a lost race instead and read the item again.
    """


class TransactionCancelled(Exception):
    """A transaction was refused; ``reasons`` holds one code per item, and
    ``items`` the item as it was, where a write asked for it (else None)."""

    def __init__(self, reasons, items=None):
        super().__init__(", ".join(reasons))
        self.reasons = reasons
        self.items = items or [None] * len(reasons)


def call(operation, **kwargs):
    """``operation`` (boto3's name) of the DynamoDB client, its errors turned
    into the service's own; a ServiceUnavailable names the operation, the
    code and the attempts made (botocore retries throttles, 5xx and
    timeouts itself). A call this function may not make (its role, its
    credentials, a KMS key) is a ConfigurationError naming the tables."""
    try:
        return getattr(aws.dynamodb(), operation)(**kwargs)
    except ClientError as exc:
        _refused(exc, operation, kwargs)
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        metadata = exc.response.get("ResponseMetadata", {})
        cause = {"operation": operation, "code": code,
                 "attempts": metadata.get("RetryAttempts", 0) + 1}
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed(exc.response.get("Item")) from None
        if code == "TransactionConflictException":
            raise Contended(**cause) from None
        if code == "TransactionCanceledException":
            cancelled = exc.response.get("CancellationReasons", [])
            reasons = [r.get("Code", "None") for r in cancelled]
            if _THROTTLED.intersection(reasons):
                raise ServiceUnavailable(**cause, reasons=sorted(set(reasons))) from None
            raise TransactionCancelled(reasons, [r.get("Item") for r in cancelled]) from None
        if code == "ResourceNotFoundException":
            raise _missing_table(operation, kwargs) from None
        if code in _UNAVAILABLE or metadata.get("HTTPStatusCode", 0) >= 500:
            raise ServiceUnavailable(**cause) from None
        raise
    except BotoCoreError as exc:
        _refused(exc, operation, kwargs)
        # Timeouts and refused connections, after botocore's own retries.
        raise ServiceUnavailable(operation=operation, code=type(exc).__name__,
                                 attempts=aws.MAX_ATTEMPTS) from None


def _refused(exc, operation, kwargs):
    refused = aws.misconfigured(exc, f"DynamoDB {operation}",
                                "table " + " and ".join(_tables_named(kwargs)))
    if refused:
        raise refused from None


def _tables_named(kwargs):
    """The tables a call's parameters name."""
    names = {kwargs.get("TableName"), *kwargs.get("RequestItems", {})}
    names.update(params["TableName"] for item in kwargs.get("TransactItems", [])
                 for params in item.values())
    return sorted(n for n in names if n)


def applied(operation, **kwargs):
    """Whether the conditional write ``operation`` was made: False when its
    condition failed (the item is not as the caller expected); every other
    error as :func:`call` raises it."""
    try:
        call(operation, **kwargs)
    except ConditionFailed:
        return False
    return True


def every(operation, **params):
    """Every item a ``query`` or ``scan`` finds, page after page."""
    start = None
    while True:
        page = call(operation, **params, **({"ExclusiveStartKey": start} if start else {}))
        yield from page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def newest_unexpired(table, sort_key, user_id, now, limit, before=None):
    """Up to ``limit`` items of ``user_id`` whose ``expires_at`` is still
    ahead, newest first by ``sort_key``, older than ``before``; returns
    (items, more).

    DynamoDB applies Limit before the filter that drops expired items, so
    it asks for one more than wanted and goes on only in the rare case that
    expired items made a page short.
    """
    found, start = [], None
    condition = "user_id = :u" + (f" AND {sort_key} < :before" if before else "")
    values = {":u": S(user_id), ":now": N(int(now))}
    if before:
        values[":before"] = S(before)
    while True:
        page = call("query", TableName=table, ConsistentRead=True, ScanIndexForward=False,
                    KeyConditionExpression=condition, FilterExpression="expires_at > :now",
                    ExpressionAttributeValues=values, Limit=limit + 1 - len(found),
                    **({"ExclusiveStartKey": start} if start else {}))
        found += page["Items"]
        start = page.get("LastEvaluatedKey")
        if len(found) > limit or not start:
            return found[:limit], len(found) > limit

def _missing_table(operation, kwargs):
    """A table that does not exist (or is not active) is a deployment's
    mistake, not an outage: telling clients to retry would hide it. It is
    logged with the table's name, and the request fails as a bug does."""
    names = _tables_named(kwargs)
    audit.event("table_not_found", level=logging.ERROR, operation=operation, tables=names)
    return ConfigurationError(f"DynamoDB table {' or '.join(names)} does not exist or is not "
                              "active; check USERS_TABLE, TOKENS_TABLE and EVENTS_TABLE")


def batch_delete(table, keys, attempts=6):
    """Delete ``keys`` from ``table``; returns only when every one is gone.

    BatchWriteItem may hand back UnprocessedItems under load; those are
    retried with backoff, and if some still remain the call fails with a
    503 rather than letting a caller report a revocation that did not happen.
    """
    for start in range(0, len(keys), BATCH_WRITE_LIMIT):
        pending = [{"DeleteRequest": {"Key": k}} for k in keys[start:start + BATCH_WRITE_LIMIT]]
        for attempt in range(attempts):
            answer = call("batch_write_item", RequestItems={table: pending})
            pending = answer.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
            pause(attempt)
        if pending:
            raise ServiceUnavailable("Not every token could be revoked; try again.",
                                     operation="batch_write_item", code="UnprocessedItems",
                                     attempts=attempts)


class Read(namedtuple("Read", "table key parse")):
    """One item to read, as a store describes it: its table, its key, and
    ``parse``, which turns the item into the store's value (an absent item
    is None, never parsed)."""

    __slots__ = ()


def read(*reads, attempts=1):
    """The items of ``reads``, each parsed (None where absent), in their
    order: one strongly consistent BatchGetItem across their tables.

    UnprocessedKeys are retried ``attempts - 1`` times, with a pause, then
    fail as a ServiceUnavailable. The authorizer and introspection keep the
    default of one call: an item left unread gives no verdict.
    """
    request, found = {}, {}
    for r in reads:
        request.setdefault(r.table, {"Keys": [], "ConsistentRead": True})["Keys"].append(r.key)
    for attempt in range(attempts):
        answer = call("batch_get_item", RequestItems=request)
        for table, items in answer.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        request = answer.get("UnprocessedKeys")
        if not request:
            return [_parsed(r, found.get(r.table, [])) for r in reads]
        if attempt + 1 < attempts:
            pause(attempt)
    raise ServiceUnavailable(operation="batch_get_item", code="UnprocessedKeys",
                             attempts=attempts)


def _parsed(wanted, items):
    for item in items:
        if all(item.get(name) == value for name, value in wanted.key.items()):
            return wanted.parse(item)
    return None


def pause(attempt):
    """A short random wait before the ``attempt``-th retry (from 0), growing
    up to half a second."""
    time.sleep(random.uniform(0, min(0.5, 0.02 * 2 ** attempt)))


def S(value):
    return {"S": value}


def N(value):
    return {"N": str(value)}


def text(item, name):
    value = item.get(name)
    return value["S"] if value else None


def number(item, name):
    value = item.get(name)
    return int(value["N"]) if value else None
