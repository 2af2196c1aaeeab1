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
"""
import logging
import threading
import time

from devserver import client_tokens, expiry, keep_alive, partitions, transactions

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
                 clock=time.time, answer_late=None):
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
        # Held while a request is served or items expire; hold it too to
        # write into moto's backends directly (as `make bench` seeds them).
        self.lock = threading.Lock()

    def start(self):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        _install()
        moto_app, tokens = DomainDispatcherApplication(create_backend_app), self.tokens

        def one_at_a_time(environ, start_response):
            with self.lock:
                _serving.active = True
                try:
                    if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".TransactWriteItems"):
                        return tokens.serve(moto_app, environ, start_response)
                    return list(moto_app(environ, start_response))
                finally:
                    _serving.active = False

        self._server = keep_alive.Server(self.host, self.port, one_at_a_time,
                                         late=self.answer_late).start()
        threading.Thread(target=self._expire_every_period, daemon=True).start()
        return self

    def expire_now(self):
        """Delete the expired items of every table now; returns how many."""
        from moto.dynamodb.models import dynamodb_backends

        with self.lock:
            return expiry.expire(dynamodb_backends, self.clock())

    def _expire_every_period(self):
        while not self._stopped.wait(self.expiry_seconds):
            try:
                self.expire_now()
            except Exception:  # noqa: BLE001 - one bad sweep must not end expiry
                logging.getLogger(__name__).exception("expiry by TTL failed; tried again "
                                                      "in %s s", self.expiry_seconds)

    def stop(self):
        self._stopped.set()
        if self._server is not None:
            self._server.stop()
