"""The unit of work: what a transaction holds, what goes first when it
cannot hold everything, and how a refused one reads."""
import json

import pytest

from conftest import PASSWORD
from faults import answer, inject

ME = "/api/v1/users/me"


def cancelled(reason):
    """A cancellation of the whole transaction, ``reason`` for every item."""
    def reply(params):
        count = len(json.loads(params["body"])["TransactItems"])
        return answer(400, {"Error": {"Code": "TransactionCanceledException",
                                      "Message": "injected"},
                            "CancellationReasons": [{"Code": reason}] * count,
                            "ResponseMetadata": {"HTTPStatusCode": 400}})
    return reply


conflict = cancelled("TransactionConflict")


def sent(dynamodb, operation):
    """The parameters of every ``operation`` call from now on."""
    seen = []
    dynamodb.meta.events.register(f"provide-client-params.dynamodb.{operation}",
                                  lambda params, **kw: seen.append(params))
    return seen


def user_with_tokens(api, monkeypatch, count):
    """A user with ``count`` tokens; their ids, oldest first, and the newest token."""
    monkeypatch.setenv("MAX_TOKENS_PER_USER", "150")
    api.signup()
    logins = [api.login().json for _ in range(count)]
    return [t["token_id"] for t in logins], logins[-1]["token"]


def deleted_ids(batches):
    """The token ids among the batched deletes (the events' go too)."""
    return [r["DeleteRequest"]["Key"]["token_id"]["S"]
            for batch in batches for items in batch["RequestItems"].values() for r in items
            if "token_id" in r["DeleteRequest"]["Key"]]


def transacted_deletes(transactions):
    return [i["Delete"]["Key"]["token_id"]["S"] for t in transactions
            for i in t["TransactItems"] if "token_id" in i.get("Delete", {}).get("Key", {})]


def test_a_password_change_that_cannot_fit_deletes_the_oldest_first(api, dynamodb, monkeypatch):
    ids, current = user_with_tokens(api, monkeypatch, 120)
    batches, transactions = sent(dynamodb, "BatchWriteItem"), sent(dynamodb, "TransactWriteItems")
    reply = api.call("POST", "/api/v1/users/me/password", token=current,
                     body={"current_password": PASSWORD, "new_password": "another password"})
    assert reply.json == {"revoked": 119}
    # 100 items: the new hash, the attempts reset, the change's event, its
    # notice, the links killed and the delete of the event that the check of
    # the password recorded as a failure until it succeeded, then the 94
    # newest others.
    assert deleted_ids(batches) == ids[:25]
    assert transacted_deletes(transactions) == ids[25:119]


def test_a_deletion_that_cannot_fit_keeps_the_callers_token_to_the_last(api, dynamodb,
                                                                       monkeypatch):
    ids, current = user_with_tokens(api, monkeypatch, 120)
    batches, transactions = sent(dynamodb, "BatchWriteItem"), sent(dynamodb, "TransactWriteItems")
    reply = api.call("DELETE", ME, token=current, body={"password": PASSWORD})
    assert reply.json == {"deleted": True, "revoked": 120}
    # The login, profile, attempts, email, links, the address's mail record
    # and second factors, the caller's token, and the 92 newest others; the
    # 27 oldest go first.
    assert deleted_ids(batches) == ids[:27]
    assert sorted(transacted_deletes(transactions)) == ids[27:]


def test_a_login_over_a_lowered_cap_evicts_only_what_its_transaction_holds(api, dynamodb,
                                                                          monkeypatch):
    ids, _ = user_with_tokens(api, monkeypatch, 120)
    monkeypatch.setenv("MAX_TOKENS_PER_USER", "1")
    transactions = sent(dynamodb, "TransactWriteItems")
    assert api.login().status == 200
    # The token, the login counter, the attempts reset, the login's event and
    # the delete of the reservation's: 95 writes left, two for each eviction
    # (the token's delete and its event).
    assert transacted_deletes(transactions) == ids[:47]


def test_a_signup_that_keeps_meeting_other_transactions_is_503(api, dynamodb, table_names):
    seen = inject(dynamodb, "TransactWriteItems", conflict)
    reply = api.signup()
    assert reply.status == 503, reply.json
    assert reply.json["error"] == "service_unavailable"
    assert reply.headers["Retry-After"] == "1"
    assert len(seen) == 4  # retried first, as any transaction conflict is
    assert dynamodb.scan(TableName=table_names["users"])["Count"] == 0


def test_a_malformed_transaction_is_a_bug_not_an_outage(api, dynamodb):
    inject(dynamodb, "TransactWriteItems", cancelled("ValidationError"))
    assert api.signup().status == 500


def test_a_login_takes_other_transactions_as_a_lost_race_and_tries_again(api, dynamodb):
    api.signup()
    seen = inject(dynamodb, "TransactWriteItems", conflict, times=5)
    assert api.login().status == 200
    assert len(seen) == 5  # four in the first round, one more after a fresh read


def test_a_transaction_takes_at_most_100_writes():
    from chalicelib import unit_of_work

    tx = unit_of_work.Transaction()
    tx.add(*[unit_of_work.delete("t", {"pk": {"S": str(i)}}) for i in range(100)])
    assert tx.room == 0
    with pytest.raises(ValueError):
        tx.add(unit_of_work.delete("t", {"pk": {"S": "one more"}}))


def test_only_unconditional_deletes_may_go_before_the_transaction():
    from chalicelib import unit_of_work

    with pytest.raises(ValueError):
        unit_of_work.Transaction().add_spillable(
            unit_of_work.delete("t", {"pk": {"S": "x"}}, condition="attribute_exists(pk)"))
