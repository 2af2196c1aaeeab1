"""The embedded DynamoDB of `make run` keeps DynamoDB's promises, at DynamoDB's cost.

Each test talks to a started EmbeddedDynamoDB through boto3, as the service
does: transactions all or nothing with DynamoDB's cancellation reasons;
transactions and queries at a cost that does not grow with the tables;
ClientRequestToken honoured; expired items deleted by TTL.
"""
import socket
import statistics
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from deploy import tables
from devserver.embedded_dynamodb import EmbeddedDynamoDB

CANCELLED = "The conditional request failed"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(**settings):
    return EmbeddedDynamoDB("127.0.0.1", _free_port(), **settings).start()


@pytest.fixture(scope="module")
def server():
    embedded = _start(expiry_seconds=0.2)
    yield embedded
    embedded.stop()


def _client(embedded):
    return boto3.client("dynamodb", endpoint_url=embedded.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture
def client(server):
    return _client(server)


@pytest.fixture
def names(client):
    """The service's three tables (TTL on expires_at), under names of this test's own."""
    suffix = uuid.uuid4().hex[:8]
    made = {kind: f"{kind}-{suffix}" for kind in tables.DEFINITIONS}
    tables.create_tables(client, made)
    return made


def _everything(client, names):
    """Every item of every table, as a comparable value."""
    return {kind: sorted((repr(sorted(i.items())) for i in client.scan(
        TableName=name, ConsistentRead=True)["Items"])) for kind, name in names.items()}


def _n(value):
    return {"N": str(value)}


def _s(value):
    return {"S": value}


@pytest.fixture
def seeded(client, names):
    """A profile with a counter, a token and an event: what the actions below touch."""
    client.put_item(TableName=names["users"], Item={"pk": _s("user#a"), "logins": _n(3)})
    client.put_item(TableName=names["tokens"], Item={
        "user_id": _s("a"), "token_id": _s("t1"), "expires_at": _n(int(time.time()) + 3600)})
    client.put_item(TableName=names["events"], Item={
        "user_id": _s("a"), "event_id": _s("e1"), "kind": _s("login")})
    return names


def _actions(names, check_holds=True, all_old=False):
    """A put, an update, a delete and a condition check, across three tables."""
    check = {"ConditionCheck": {
        "TableName": names["events"], "Key": {"user_id": _s("a"), "event_id": _s("e1")},
        "ConditionExpression": "kind = :kind",
        "ExpressionAttributeValues": {":kind": _s("login" if check_holds else "logout")}}}
    if all_old:
        check["ConditionCheck"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return [
        {"Put": {"TableName": names["events"],
                 "Item": {"user_id": _s("a"), "event_id": _s("e2"), "kind": _s("revoke")},
                 "ConditionExpression": "attribute_not_exists(event_id)"}},
        {"Update": {"TableName": names["users"], "Key": {"pk": _s("user#a")},
                    "UpdateExpression": "ADD logins :one",
                    "ExpressionAttributeValues": {":one": _n(1)}}},
        {"Delete": {"TableName": names["tokens"],
                    "Key": {"user_id": _s("a"), "token_id": _s("t1")},
                    "ConditionExpression": "attribute_exists(token_id)"}},
        check,
    ]


def _cancelled(client, actions, **extra):
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(TransactItems=actions, **extra)
    return caught.value.response


def test_a_transaction_whose_conditions_hold_applies_every_action(client, seeded):
    client.transact_write_items(TransactItems=_actions(seeded))
    assert client.get_item(TableName=seeded["events"], Key={
        "user_id": _s("a"), "event_id": _s("e2")})["Item"]["kind"] == _s("revoke")
    assert client.get_item(TableName=seeded["users"], Key={
        "pk": _s("user#a")})["Item"]["logins"] == _n(4)
    assert "Item" not in client.get_item(TableName=seeded["tokens"], Key={
        "user_id": _s("a"), "token_id": _s("t1")})


def test_a_failed_condition_check_leaves_every_item_as_it_was(client, seeded):
    before = _everything(client, seeded)
    answer = _cancelled(client, _actions(seeded, check_holds=False))
    assert answer["Error"]["Code"] == "TransactionCanceledException"
    assert answer["CancellationReasons"] == [
        {"Code": "None"}, {"Code": "None"}, {"Code": "None"},
        {"Code": "ConditionalCheckFailed", "Message": CANCELLED}]
    assert "[None, None, None, ConditionalCheckFailed]" in answer["Error"]["Message"]
    assert _everything(client, seeded) == before


def test_every_failed_condition_is_a_reason_and_all_old_returns_the_item(client, seeded):
    """The put finds its item there, the delete finds none: both are
    reasons, in order, and ALL_OLD gives back the item as stored."""
    actions = _actions(seeded, check_holds=False, all_old=True)
    client.put_item(TableName=seeded["events"], Item={
        "user_id": _s("a"), "event_id": _s("e2"), "kind": _s("older")})
    client.delete_item(TableName=seeded["tokens"], Key={"user_id": _s("a"),
                                                         "token_id": _s("t1")})
    actions[0]["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    actions[2]["Delete"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"  # none to return
    before = _everything(client, seeded)
    answer = _cancelled(client, actions)
    assert answer["CancellationReasons"] == [
        {"Code": "ConditionalCheckFailed", "Message": CANCELLED,
         "Item": {"user_id": _s("a"), "event_id": _s("e2"), "kind": _s("older")}},
        {"Code": "None"},
        {"Code": "ConditionalCheckFailed", "Message": CANCELLED},
        {"Code": "ConditionalCheckFailed", "Message": CANCELLED,
         "Item": {"user_id": _s("a"), "event_id": _s("e1"), "kind": _s("login")}}]
    assert _everything(client, seeded) == before


def test_a_write_that_fails_part_way_puts_back_the_writes_before_it(client, seeded):
    """The put and the delete are applied before the update finds that it
    cannot add a number to a string: both are undone."""
    client.put_item(TableName=seeded["users"], Item={"pk": _s("user#a"), "logins": _s("x")})
    before = _everything(client, seeded)
    actions = _actions(seeded)
    actions[1], actions[2] = actions[2], actions[1]
    actions[2]["Update"]["UpdateExpression"] = "SET logins = logins + :one"
    answer = _cancelled(client, actions)
    assert answer["Error"]["Code"] == "ValidationException"
    assert _everything(client, seeded) == before


def test_two_actions_on_one_item_are_refused_and_write_nothing(client, seeded):
    before = _everything(client, seeded)
    actions = _actions(seeded)
    actions.append({"ConditionCheck": {
        "TableName": seeded["users"], "Key": {"pk": _s("user#a")},
        "ConditionExpression": "attribute_exists(pk)"}})
    answer = _cancelled(client, actions)
    assert answer["Error"]["Code"] == "ValidationException"
    assert "multiple operations on one item" in answer["Error"]["Message"]
    assert _everything(client, seeded) == before


def _seed_events(server, names, count):
    """``count`` events straight into the server's tables (no requests)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    with server.lock:
        for i in range(count):
            backend.put_item(names["events"], {"user_id": _s(f"u{i % 500}"),
                                               "event_id": _s(f"{i:08d}"), "kind": _s("login")})


def _transaction_ms(client, names, runs=15):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": names["users"], "Item": {"pk": _s(uuid.uuid4().hex)}}},
            {"Put": {"TableName": names["events"],
                     "Item": {"user_id": _s("a"), "event_id": _s(uuid.uuid4().hex)},
                     "ConditionExpression": "attribute_not_exists(event_id)"}}])
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def test_a_transaction_costs_what_it_touches_not_what_the_tables_hold(server, client):
    """moto alone: about 1 ms with an empty events table, 460 ms with 20,000
    events (it copies every table it touches). Here both are one request's
    worth; the bound leaves room for a busy machine, not for copying."""
    empty, full = ({kind: f"{kind}-{uuid.uuid4().hex[:8]}" for kind in tables.DEFINITIONS}
                   for _ in range(2))
    tables.create_tables(client, empty)
    tables.create_tables(client, full)
    _seed_events(server, full, 20000)
    assert client.scan(TableName=full["events"], Select="COUNT")["Count"] == 20000
    _transaction_ms(client, empty, runs=3)  # warm the connection
    empty_ms, full_ms = _transaction_ms(client, empty), _transaction_ms(client, full)
    assert full_ms < 3 * empty_ms + 20, (empty_ms, full_ms)


def _query_ms(client, names, runs=15):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        client.query(TableName=names["events"], KeyConditionExpression="user_id = :u",
                     ExpressionAttributeValues={":u": _s("a")})
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def test_a_query_costs_what_it_reads_not_what_the_table_holds(server, client):
    """moto alone sorts the whole table for a Query: 3 ms against an empty
    events table, 500 ms with 50,000 events."""
    empty, full = ({kind: f"{kind}-{uuid.uuid4().hex[:8]}" for kind in tables.DEFINITIONS}
                   for _ in range(2))
    tables.create_tables(client, empty)
    tables.create_tables(client, full)
    _seed_events(server, full, 20000)
    for names in (empty, full):
        for i in range(5):
            client.put_item(TableName=names["events"], Item={"user_id": _s("a"),
                                                            "event_id": _s(f"e{i}")})
    _query_ms(client, empty, runs=3)  # warm the connection
    empty_ms, full_ms = _query_ms(client, empty), _query_ms(client, full)
    assert full_ms < 3 * empty_ms + 20, (empty_ms, full_ms)


def test_a_query_reads_its_partition_in_order_and_by_pages(server, client, names):
    _seed_events(server, names, 2000)  # 4 events each for users u0 to u499
    for i in range(7):
        client.put_item(TableName=names["events"], Item={"user_id": _s("u7"),
                                                        "event_id": _s(f"x{i}")})
    asked = {"TableName": names["events"], "KeyConditionExpression": "user_id = :u",
             "ExpressionAttributeValues": {":u": _s("u7")}, "ConsistentRead": True}
    everything = [i["event_id"]["S"] for i in client.query(**asked)["Items"]]
    assert everything == sorted(everything) and len(everything) == 11
    assert all(i.startswith("x") or int(i) % 500 == 7 for i in everything)
    backwards = [i["event_id"]["S"] for i in client.query(ScanIndexForward=False, **asked)["Items"]]
    assert backwards == everything[::-1]
    pages, start = [], {}
    while True:
        page = client.query(Limit=4, **asked, **start)
        pages += [i["event_id"]["S"] for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    assert pages == everything
    ranged = client.query(**{**asked, "KeyConditionExpression": "user_id = :u AND event_id > :e",
                             "ExpressionAttributeValues": {":u": _s("u7"), ":e": _s("x3")}})
    assert [i["event_id"]["S"] for i in ranged["Items"]] == ["x4", "x5", "x6"]
    assert client.query(**{**asked, "ExpressionAttributeValues": {":u": _s("nobody")}})[
        "Items"] == []


def _counter_and_marker(names, token_value="one"):
    return [
        {"Update": {"TableName": names["users"], "Key": {"pk": _s("counter")},
                    "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": _n(1)}}},
        {"Put": {"TableName": names["events"],
                 "Item": {"user_id": _s("a"), "event_id": _s("marker"), "v": _s(token_value)},
                 "ConditionExpression": "attribute_not_exists(event_id)"}},
    ]


def _counter(client, names):
    found = client.get_item(TableName=names["users"], Key={"pk": _s("counter")},
                            ConsistentRead=True)
    return int(found["Item"]["n"]["N"]) if "Item" in found else 0


def test_a_transaction_sent_twice_with_one_token_is_applied_once(client, names):
    """The second sending succeeds (its conditional put would fail if it
    were applied again) and the counter is added to once."""
    token = str(uuid.uuid4())
    for _ in range(2):
        client.transact_write_items(TransactItems=_counter_and_marker(names),
                                    ClientRequestToken=token)
    assert _counter(client, names) == 1


def test_transactions_without_a_shared_token_are_each_applied(client, names):
    """botocore gives each call a token of its own: two calls are two transactions."""
    actions = _counter_and_marker(names)[:1]
    client.transact_write_items(TransactItems=actions)
    client.transact_write_items(TransactItems=actions)
    assert _counter(client, names) == 2


def test_one_token_with_another_request_is_a_mismatch_and_applies_nothing(client, names):
    token = str(uuid.uuid4())
    client.transact_write_items(TransactItems=_counter_and_marker(names), ClientRequestToken=token)
    before = _everything(client, names)
    answer = _cancelled(client, _counter_and_marker(names, "two"), ClientRequestToken=token)
    assert answer["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _everything(client, names) == before


def test_a_cancelled_transaction_is_not_remembered_by_its_token(client, names):
    """DynamoDB remembers a token's success only: once the condition holds,
    the same request with the same token is applied."""
    token = str(uuid.uuid4())
    client.put_item(TableName=names["events"], Item={"user_id": _s("a"),
                                                     "event_id": _s("marker")})
    answer = _cancelled(client, _counter_and_marker(names), ClientRequestToken=token)
    assert answer["Error"]["Code"] == "TransactionCanceledException"
    client.delete_item(TableName=names["events"], Key={"user_id": _s("a"),
                                                        "event_id": _s("marker")})
    client.transact_write_items(TransactItems=_counter_and_marker(names), ClientRequestToken=token)
    assert _counter(client, names) == 1


def test_a_token_is_new_again_once_its_window_has_passed():
    embedded = _start(token_seconds=0.5)
    try:
        client = _client(embedded)
        names = {kind: f"{kind}-{uuid.uuid4().hex[:8]}" for kind in tables.DEFINITIONS}
        tables.create_tables(client, names)
        actions, token = _counter_and_marker(names)[:1], str(uuid.uuid4())
        client.transact_write_items(TransactItems=actions, ClientRequestToken=token)
        client.transact_write_items(TransactItems=actions, ClientRequestToken=token)
        assert _counter(client, names) == 1
        time.sleep(0.6)
        client.transact_write_items(TransactItems=actions, ClientRequestToken=token)
        assert _counter(client, names) == 2
    finally:
        embedded.stop()


def test_items_whose_ttl_has_passed_are_deleted_and_no_others(client, names):
    """DynamoDB's rules: only a number less than now expires its item, and
    not one more than five years old; a table without TTL keeps everything."""
    now = int(time.time())
    kept_ttl = {"future": _n(now + 3600), "text": _s(str(now - 60)), "missing": None,
                "ancient": _n(now - 6 * 365 * 24 * 3600)}
    gone = {"expired": _n(now - 60), "just-expired": _n(now - 1)}
    for event_id, expires in {**kept_ttl, **gone}.items():
        item = {"user_id": _s("a"), "event_id": _s(event_id)}
        if expires is not None:
            item[tables.TTL_ATTRIBUTE] = expires
        client.put_item(TableName=names["events"], Item=item)
    client.put_item(TableName=names["users"], Item={"pk": _s("expired"),
                                                    tables.TTL_ATTRIBUTE: _n(now - 60)})
    client.update_time_to_live(TableName=names["users"], TimeToLiveSpecification={
        "Enabled": False, "AttributeName": tables.TTL_ATTRIBUTE})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = {i["event_id"]["S"] for i in client.scan(TableName=names["events"])["Items"]}
        if not left & set(gone):
            break
        time.sleep(0.1)
    assert left == set(kept_ttl)
    assert client.scan(TableName=names["users"])["Count"] == 1



def test_each_token_is_forgotten_ten_minutes_after_its_own_success():
    """Tokens of different ages: only the ones whose window has passed are new again."""
    import io
    import json

    from devserver.client_tokens import ClientTokens

    now, applied = [0.0], []
    tokens = ClientTokens(clock=lambda: now[0])

    def app(environ, start_response):
        applied.append(json.loads(environ["wsgi.input"].read())["ClientRequestToken"])
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
        return [b"{}"]

    def send(token):
        body = json.dumps({"TransactItems": [], "ClientRequestToken": token}).encode()
        environ = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        return tokens.serve(app, environ, lambda status, headers, exc_info=None: None)

    send("a")
    now[0] = 300.0
    send("b")
    now[0] = 600.5
    assert send("a") == send("b") == [b"{}"]
    assert applied == ["a", "b", "a"]
    now[0] = 900.5
    send("a"), send("b")
    assert applied == ["a", "b", "a", "b"]
