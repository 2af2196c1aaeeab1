"""The embedded DynamoDB of `make run`: moto's server, one request at a time.

DynamoDB applies each conditional write atomically. moto's threaded server
runs each request on a thread of its own with nothing between a condition's
check and its write, so under a burst two conditional writes can both pass
(measured: 6 password checks instead of 5 in 2 of 80 bursts of 40 parallel
guesses). Serving one request at a time restores the guarantee that the
backoff and the uniqueness guards rely on; a local stack is not a load test.

Where moto departs from DynamoDB in ways the service can feel, the requests
this server serves get DynamoDB's behaviour instead (moto used directly, as
the unit tests use it, is left as it is):
- TransactWriteItems is all or nothing at the cost of the items it names,
  not of the tables it touches (devserver/transactions.py);
- a Query reads the partition it asks for, not the whole table
  (devserver/partitions.py);
- its ClientRequestToken makes it idempotent (devserver/client_tokens.py);
- items whose TTL has passed are deleted, every ``expiry_seconds``
  (devserver/expiry.py), between requests.

Given a ``data_file``, its data outlives the process (devserver/kept_data.py):
loaded at start (items past their TTL then expire at once), saved at most
``save_seconds`` after a request that may have written, and on stop. A
snapshot holds the lock (8 ms per 1,000 items, measured), so saves are spaced
to hold it at most a twentieth of the time: a large data set is saved less
often than every ``save_seconds``.
"""
import logging
import threading
import time

from devserver import client_tokens, expiry, keep_alive, kept_data, partitions, transactions

# What cannot change an item; any other request marks the data to be saved.
READS = {"GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables",
         "DescribeTimeToLive", "DescribeEndpoints", "DescribeLimits", "ListTagsOfResource",
         "DescribeContinuousBackups"}

_serving = threading.local()
_install_lock = threading.Lock()


def _install():
    """Route moto's transactions to devserver.transactions, and its queries
    through devserver.partitions, for the requests this server serves (once
    a process; other callers keep moto's own)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    with _install_lock:
        if getattr(DynamoDBBackend.transact_write_items, "embedded", False):
            return
        moto_transaction, moto_query = DynamoDBBackend.transact_write_items, Table.query
        query = partitions.partition_query(moto_query)

        def transact_write_items(backend, transact_items):
            if getattr(_serving, "active", False):
                return transactions.transact_write_items(backend, transact_items)
            return moto_transaction(backend, transact_items)

        def table_query(table, *args, **kwargs):
            if getattr(_serving, "active", False):
                return query(table, *args, **kwargs)
            return moto_query(table, *args, **kwargs)

        transact_write_items.embedded = True
        DynamoDBBackend.transact_write_items, Table.query = transact_write_items, table_query


class EmbeddedDynamoDB:
    def __init__(self, host, port, expiry_seconds=60, token_seconds=client_tokens.WINDOW_SECONDS,
                 clock=time.time, answer_late=None, data_file=None, save_seconds=2):
        """``answer_late(environ)``, when given, names the seconds to hold a
        request's answer after it was applied (0: none), while others are
        served: the fault of a write that happened but whose answer timed
        out."""
        self.host, self.port = host, port
        self.answer_late = answer_late
        self.endpoint = f"http://{host}:{port}"
        self.expiry_seconds, self.clock = expiry_seconds, clock
        self.tokens = client_tokens.ClientTokens(token_seconds)
        self._server = None
        self._stopped = threading.Event()
        self.data_file, self.save_seconds = data_file, save_seconds
        # Requests that may have written since start, and how many of them
        # the file holds: the file is behind while they differ.
        self._changes = self._saved = 0
        self._held = None
        # One save at a time, so an older snapshot never replaces a newer one.
        self._save_lock = threading.Lock()
        self._next_save = 0.0  # time.monotonic() before which no periodic save starts
        # Held while a request is served or items expire; hold it too to
        # write into moto's backends directly (as `make bench` seeds them).
        self.lock = threading.Lock()

    def start(self):
        """Serve; raises kept_data.Unusable (one line) when the data file
        cannot be read or another process serves on it."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        _install()
        if self.data_file:
            self._load()
        moto_app, tokens = DomainDispatcherApplication(create_backend_app), self.tokens

        def one_at_a_time(environ, start_response):
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            with self.lock:
                _serving.active = True
                try:
                    if target.endswith(".TransactWriteItems"):
                        return tokens.serve(moto_app, environ, start_response)
                    return list(moto_app(environ, start_response))
                finally:
                    _serving.active = False
                    if target.rpartition(".")[2] not in READS:
                        self._changes += 1

        try:
            self._server = keep_alive.Server(self.host, self.port, one_at_a_time,
                                             late=self.answer_late).start()
        except BaseException:
            self._release()
            raise
        threading.Thread(target=self._expire_every_period, daemon=True).start()
        if self.data_file:
            threading.Thread(target=self._save_every_period, daemon=True).start()
        return self

    def _load(self):
        from moto.dynamodb.models import dynamodb_backends

        self._held = kept_data.hold(self.data_file)
        try:
            data = kept_data.read(self.data_file)
            if data is not None:
                with self.lock:
                    kept_data.restore(dynamodb_backends, self.data_file, data)
        except BaseException:
            self._release()
            raise
        if data is not None:
            self.expire_now()

    def save(self):
        """Write every table to the data file now, if it is behind."""
        from moto.dynamodb.models import dynamodb_backends

        with self._save_lock:
            with self.lock:
                changes = self._changes
                if changes == self._saved:
                    return
                started = time.monotonic()
                data = kept_data.snapshot(dynamodb_backends)
                held = time.monotonic() - started
            kept_data.write(self.data_file, data)
            self._saved = changes
            self._next_save = time.monotonic() + 20 * held

    def _save_every_period(self):
        while not self._stopped.wait(self.save_seconds):
            if time.monotonic() < self._next_save:
                continue
            try:
                self.save()
            except Exception:  # noqa: BLE001 - the next period tries again
                logging.getLogger(__name__).exception("saving %s failed; tried again in %s s",
                                                      self.data_file, self.save_seconds)

    def _release(self):
        if self._held is not None:
            kept_data.release(self._held)
            self._held = None

    def expire_now(self):
        """Delete the expired items of every table now; returns how many."""
        from moto.dynamodb.models import dynamodb_backends

        with self.lock:
            deleted = expiry.expire(dynamodb_backends, self.clock())
            if deleted:
                self._changes += 1
            return deleted

    def _expire_every_period(self):
        while not self._stopped.wait(self.expiry_seconds):
            try:
                self.expire_now()
            except Exception:  # noqa: BLE001 - one bad sweep must not end expiry
                logging.getLogger(__name__).exception("expiry by TTL failed; tried again "
                                                      "in %s s", self.expiry_seconds)

    def stop(self):
        """Stop serving, then save what the data file does not hold yet."""
        self._stopped.set()
        if self._server is not None:
            self._server.stop()
        if self._held is not None:
            try:
                self.save()
            finally:
                self._release()
