"""DynamoDB calls, with their error codes turned into the service's own.

Every call of the service goes through :func:`call`, so that a throttle, a
5xx or a timeout becomes a 503 ``service_unavailable`` in one place, a
missing table a loud configuration error, and a failed condition an
exception the stores can name.
"""
import logging
import random
import time

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
BATCH_WRITE_LIMIT = 25
TRANSACTION_LIMIT = 100


class ConditionFailed(Exception):
    """A conditional write found the item not as expected; ``item`` is the
    item as it then was, when the call asked for it (None if absent)."""

    def __init__(self, item=None):
        super().__init__()
        self.item = item


class Contended(ServiceUnavailable):
    """A plain write met a transaction in progress on its item.

    A 503 wherever nobody expects it; a compare-and-swap loop may take it as
    a lost race instead and read the item again.
    """


class TransactionCancelled(Exception):
    """A transaction was refused; ``reasons`` holds one code per item."""

    def __init__(self, reasons):
        super().__init__(", ".join(reasons))
        self.reasons = reasons


def call(operation, **kwargs):
    try:
        return getattr(aws.dynamodb(), operation)(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed(exc.response.get("Item")) from None
        if code == "TransactionConflictException":
            raise Contended() from None
        if code == "TransactionCanceledException":
            reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            if any(r in ("ThrottlingError", "ProvisionedThroughputExceeded") for r in reasons):
                raise ServiceUnavailable() from None
            raise TransactionCancelled(reasons) from None
        if code == "ResourceNotFoundException":
            raise _missing_table(operation, kwargs) from None
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _UNAVAILABLE or status >= 500:
            raise ServiceUnavailable() from None
        raise
    except BotoCoreError:
        # Timeouts, refused connections, exhausted retries.
        raise ServiceUnavailable() from None


def _missing_table(operation, kwargs):
    """A table that does not exist (or is not active) is a deployment's
    mistake, not an outage: telling clients to retry would hide it. It is
    logged with the table's name, and the request fails as a bug does."""
    names = {kwargs.get("TableName"), *kwargs.get("RequestItems", {})}
    names.update(params["TableName"] for item in kwargs.get("TransactItems", [])
                 for params in item.values())
    names = sorted(n for n in names if n)
    audit.event("table_not_found", level=logging.ERROR, operation=operation, tables=names)
    return ConfigurationError(f"DynamoDB table {' or '.join(names)} does not exist or is not "
                              "active; check USERS_TABLE and TOKENS_TABLE")


def transact(items, attempts=4):
    """TransactWriteItems; a conflict with another transaction is retried."""
    for attempt in range(attempts):
        try:
            return call("transact_write_items", TransactItems=items)
        except TransactionCancelled as exc:
            if "TransactionConflict" not in exc.reasons or attempt == attempts - 1:
                raise
        _pause(attempt)


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
            _pause(attempt)
        if pending:
            raise ServiceUnavailable("Not every token could be revoked; try again.")


def batch_get(table, keys, attempts=6):
    """Strongly consistent BatchGetItem of ``keys``; retries UnprocessedKeys."""
    found, pending = [], {table: {"Keys": keys, "ConsistentRead": True}}
    for attempt in range(attempts):
        answer = call("batch_get_item", RequestItems=pending)
        found += answer.get("Responses", {}).get(table, [])
        pending = answer.get("UnprocessedKeys") or {}
        if not pending:
            return found
        _pause(attempt)
    raise ServiceUnavailable()


def _pause(attempt):
    time.sleep(random.uniform(0, 0.02 * 2 ** attempt))


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
