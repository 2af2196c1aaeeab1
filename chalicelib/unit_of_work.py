"""The unit of work: writes that several stores describe, sent together as
one DynamoDB transaction, and what a refused one means.

A store describes each write (:func:`put`, :func:`update`, :func:`delete`,
:func:`condition_check`) with its item's shape and condition; a use case
decides what goes together in a :class:`Transaction`. This is the one place
that knows a transaction's size limit and how a failed commit reads: a
:class:`StaleWrite` names the writes whose condition failed, by label.
"""
from collections import namedtuple

from chalicelib import dynamo
from chalicelib.dynamo import Contended, TransactionCancelled

TRANSACTION_LIMIT = 100


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
            dynamo.batch_delete(table, [d.params["Key"] for d in first if d.table == table])
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
            raise Contended(operation="transact_write_items",
                            code="TransactionCanceledException",
                            reasons=sorted(set(exc.reasons))) from None


def after_lost_race(attempt):
    """Wait a little, at random, before the ``attempt``-th retry (from 0) of
    a write that lost a race: racers that all try again at once meet again,
    and the one that keeps losing is the one that waits least."""
    dynamo.pause(attempt)


def _transact(items, attempts=4):
    """TransactWriteItems; a conflict with another transaction is retried."""
    for attempt in range(attempts):
        try:
            return dynamo.call("transact_write_items", TransactItems=items)
        except TransactionCancelled as exc:
            if "TransactionConflict" not in exc.reasons or attempt == attempts - 1:
                raise
        dynamo.pause(attempt)
