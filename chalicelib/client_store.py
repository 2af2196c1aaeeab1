"""Introspection clients: ``client#<id>`` items of the users table.

Each holds client_id, name, created_at and secret_hash (see
chalicelib/clients.py for why a plain SHA-256 is the right hash here); the
secret itself is never stored.
"""
import re
from collections import namedtuple

from chalicelib import dynamo, unit_of_work
from chalicelib.dynamo import S

# 128 random bits in hex: an id is not a secret, but cannot be guessed either.
CLIENT_ID = re.compile(r"[0-9a-f]{32}")
_PREFIX = "client#"


# A named tuple, not a dataclass: stores.py imports this module at every
# cold start of both functions, and a dataclass costs a millisecond to make.
Client = namedtuple("Client", "client_id name created_at secret_hash", defaults=("",))


def _client(item):
    return Client(client_id=item["client_id"]["S"], name=item["name"]["S"],
                  created_at=item["created_at"]["S"],
                  secret_hash=dynamo.text(item, "secret_hash") or "")


class ClientStore:
    def __init__(self, table):
        self.table = table

    @staticmethod
    def key(client_id):
        return {"pk": S(_PREFIX + client_id)}

    def read(self, client_id):
        """The client, as one read of a batch (stores.read)."""
        return dynamo.Read(self.table, self.key(client_id), _client)

    def get(self, client_id):
        item = dynamo.call("get_item", TableName=self.table, Key=self.key(client_id),
                           ConsistentRead=True).get("Item")
        return _client(item) if item else None

    # Both writes are transactions of one item, though nothing else goes
    # with them: a transaction carries a ClientRequestToken, so a retry of
    # one that was applied but answered late is told it succeeded, where a
    # plain conditional write would find its own work and report a failure.

    def create(self, client):
        """Write a new client; its id must be new."""
        tx = unit_of_work.Transaction()
        tx.add(unit_of_work.put(self.table, {
            **self.key(client.client_id), "client_id": S(client.client_id),
            "name": S(client.name), "created_at": S(client.created_at),
            "secret_hash": S(client.secret_hash)}, "attribute_not_exists(pk)", label="client"))
        tx.commit()

    def delete(self, client_id):
        """Delete a client; False when there was none."""
        tx = unit_of_work.Transaction()
        tx.add(unit_of_work.delete(self.table, self.key(client_id),
                                   condition="attribute_exists(pk)", label="client"))
        try:
            tx.commit()
        except unit_of_work.StaleWrite:
            return False
        return True

    def all(self):
        """Every client, without its hash.

        A Scan of the users table, filtered: an operator's command, run
        rarely, that reads (and pays for) every item of the table. Clients
        are few and read one by one on the hot path, so they get no index.
        """
        found = [_client(item) for item in dynamo.every(
            "scan", TableName=self.table, ConsistentRead=True,
            FilterExpression="begins_with(pk, :prefix)",
            ExpressionAttributeValues={":prefix": S(_PREFIX)},
            ProjectionExpression="client_id, #n, created_at",
            ExpressionAttributeNames={"#n": "name"})]
        return sorted(found, key=lambda c: (c.created_at, c.client_id))
