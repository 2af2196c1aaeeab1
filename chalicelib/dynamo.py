"""DynamoDB calls, with their error codes turned into the service's own, and
the unit of work that writes several items at once.

Every call of the service goes through :func:`call`, so that a throttle, a
5xx or a timeout becomes a 503 ``service_unavailable`` in one place, a
missing table a loud configuration error, and a failed condition an
exception the stores can name. :class:`Transaction` is the one place that
knows what a transaction holds and how a refused one reads.
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
TRANSACTION_LIMIT = 100


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


class StaleWrite(Exception):
    """A transaction was refused because an item was not as its write's
    condition expected; nothing of it was written. ``failed`` holds the
    labels of the writes whose condition failed (see :class:`Write`), and
    ``items`` the item as it was for each of those that asked for it (a
    write made with ``return_old=True``; absent when there was no item)."""

    def __init__(self, failed, items=None):
        super().__init__(", ".join(sorted(failed)))
        self.failed = frozenset(failed)
        self.items = items or {}


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
            cancelled = exc.response.get("CancellationReasons", [])
            reasons = [r.get("Code", "None") for r in cancelled]
            if _THROTTLED.intersection(reasons):
                raise ServiceUnavailable() from None
            raise TransactionCancelled(reasons, [r.get("Item") for r in cancelled]) from None
        if code == "ResourceNotFoundException":
            raise _missing_table(operation, kwargs) from None
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _UNAVAILABLE or status >= 500:
            raise ServiceUnavailable() from None
        raise
    except BotoCoreError:
        # Timeouts, refused connections, exhausted retries.
        raise ServiceUnavailable() from None



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
    names = {kwargs.get("TableName"), *kwargs.get("RequestItems", {})}
    names.update(params["TableName"] for item in kwargs.get("TransactItems", [])
                 for params in item.values())
    names = sorted(n for n in names if n)
    audit.event("table_not_found", level=logging.ERROR, operation=operation, tables=names)
    return ConfigurationError(f"DynamoDB table {' or '.join(names)} does not exist or is not "
                              "active; check USERS_TABLE, TOKENS_TABLE and EVENTS_TABLE")


class Write(namedtuple("Write", "kind params label", defaults=(None,))):
    """One write of a transaction, as a store describes it.

    ``kind`` is TransactWriteItems' name for it (Put, Update, Delete,
    ConditionCheck) and ``params`` its parameters. ``label`` names the write
    in a :class:`StaleWrite` when its condition fails, for the callers that
    must tell one failed condition from another. (A named tuple: a
    dataclass would cost a millisecond at every cold start.)
    """

    __slots__ = ()

    @property
    def table(self):
        return self.params["TableName"]


def put(table, item, condition=None, label=None):
    return Write("Put", _params(TableName=table, Item=item, ConditionExpression=condition), label)


def update(table, key, expression, values, condition=None, names=None, label=None,
           return_old=False):
    """An update; ``return_old``: a failed condition hands back the item as
    it was (in StaleWrite.items), so a compare-and-swap needs no new read."""
    return Write("Update", _params(TableName=table, Key=key, UpdateExpression=expression,
                                   ConditionExpression=condition,
                                   ExpressionAttributeNames=names,
                                   ExpressionAttributeValues=values,
                                   ReturnValuesOnConditionCheckFailure="ALL_OLD" if return_old
                                   else None), label)


def condition_check(table, key, condition, values, label=None):
    """A condition on an item that the transaction does not write."""
    return Write("ConditionCheck", _params(TableName=table, Key=key, ConditionExpression=condition,
                                           ExpressionAttributeValues=values), label)


def delete(table, key, condition=None, values=None, label=None):
    return Write("Delete", _params(TableName=table, Key=key, ConditionExpression=condition,
                                   ExpressionAttributeValues=values), label)


def _params(**params):
    return {name: value for name, value in params.items() if value is not None}


class Transaction:
    """A unit of work: writes that several stores add, sent as one
    TransactWriteItems by :meth:`commit`, all or nothing.

    DynamoDB takes at most TRANSACTION_LIMIT items in a transaction; this
    is the one place that knows it. Writes that must be atomic go in with
    :meth:`add`; deletes that may go first, when they do not fit, go in
    with :meth:`add_spillable`.
    """

    def __init__(self):
        self._writes = []
        self._spillable = []

    @property
    def room(self):
        """How many more writes the transaction itself can hold."""
        return max(0, TRANSACTION_LIMIT - len(self._writes) - len(self._spillable))

    def add(self, *writes):
        if len(self._writes) + len(writes) > TRANSACTION_LIMIT:
            raise ValueError(f"a transaction holds at most {TRANSACTION_LIMIT} writes")
        self._writes += writes

    def add_spillable(self, *deletes):
        """Unconditional deletes, oldest first, that belong in the
        transaction when there is room and may otherwise go before it.

        At commit the newest ones fill whatever room the other writes leave,
        and the rest (the oldest) are deleted first, in batches: nothing is
        refused for want of room, and what goes first is what matters least
        if the transaction then fails.
        """
        if any(d.kind != "Delete" or "ConditionExpression" in d.params for d in deletes):
            raise ValueError("only unconditional deletes can go in a batch")
        self._spillable += deletes

    def commit(self):
        """Send the writes: first the deletes that do not fit, then the
        transaction.

        Raises StaleWrite when a condition failed, Contended when other
        transactions kept conflicting with this one (a 503, or a lost race
        to a compare-and-swap loop), ServiceUnavailable when DynamoDB is
        busy or broken.
        """
        fits = TRANSACTION_LIMIT - len(self._writes)
        first = self._spillable[:max(0, len(self._spillable) - fits)]
        writes = self._writes + self._spillable[len(first):]
        for table in dict.fromkeys(d.table for d in first):
            batch_delete(table, [d.params["Key"] for d in first if d.table == table])
        try:
            _transact([{w.kind: w.params} for w in writes])
        except TransactionCancelled as exc:
            stale = [(w.label or w.kind, item) for w, reason, item
                     in zip(writes, exc.reasons, exc.items) if reason == "ConditionalCheckFailed"]
            if stale:
                raise StaleWrite({label for label, _ in stale},
                                 {label: item for label, item in stale if item}) from None
            if "ValidationError" in exc.reasons:
                raise  # a malformed transaction: a bug of ours
            # Other transactions on its items, still after the retries (or
            # a cancellation that gives no reason): nothing was written, and
            # trying again later may well succeed.
            raise Contended() from None


def _transact(items, attempts=4):
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


class Read(namedtuple("Read", "table key parse")):
    """One item to read, as a store describes it: its table, its key, and
    ``parse``, which turns the item into the store's value (an absent item
    is None, never parsed)."""

    __slots__ = ()


def read(*reads):
    """The items of ``reads``, each parsed (None where absent), in their
    order: one strongly consistent BatchGetItem across their tables.

    UnprocessedKeys are not retried: the callers (the authorizer and
    introspection) are held to one call, and an item left unread gives no
    verdict, so it is a ServiceUnavailable.
    """
    request = {}
    for r in reads:
        request.setdefault(r.table, {"Keys": [], "ConsistentRead": True})["Keys"].append(r.key)
    answer = call("batch_get_item", RequestItems=request)
    if answer.get("UnprocessedKeys"):
        raise ServiceUnavailable()
    found = answer.get("Responses", {})
    return [_parsed(r, found.get(r.table, [])) for r in reads]


def _parsed(wanted, items):
    for item in items:
        if all(item.get(name) == value for name, value in wanted.key.items()):
            return wanted.parse(item)
    return None


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
