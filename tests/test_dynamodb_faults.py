"""What DynamoDB trouble looks like from outside: a 503, never a lie."""
import pytest

from faults import all_unprocessed, client_error, inject, timeout

ME = "/api/v1/users/me"


def live(api, tokens):
    return [api.call("GET", ME, token=t).status == 200 for t in tokens]


def test_unprocessed_items_are_retried_until_every_token_is_gone(api, dynamodb):
    tokens = [api.user()] + [api.token() for _ in range(29)]
    seen = inject(dynamodb, "BatchWriteItem", all_unprocessed, times=2)
    reply = api.call("DELETE", "/api/v1/tokens", token=tokens[0])
    assert reply.status == 200 and reply.json == {"revoked": 30}
    assert len(seen) == 2
    assert not any(live(api, tokens))


def test_revoke_all_never_reports_success_with_survivors(api, dynamodb):
    tokens = [api.user()] + [api.token() for _ in range(2)]
    inject(dynamodb, "BatchWriteItem", all_unprocessed)
    reply = api.call("DELETE", "/api/v1/tokens", token=tokens[0])
    assert reply.status == 503
    assert reply.json["error"] == "service_unavailable"
    assert reply.headers.get("Retry-After") == "1"
    assert all(live(api, tokens))


@pytest.mark.parametrize("fault", [
    lambda p: client_error("ThrottlingException"),
    lambda p: client_error("ProvisionedThroughputExceededException"),
    lambda p: client_error("InternalServerError", status=500),
    timeout,
])
def test_a_busy_or_broken_dynamodb_is_503_at_login(api, dynamodb, fault):
    api.signup()
    inject(dynamodb, "BatchGetItem", fault)
    reply = api.login()
    assert reply.status == 503
    assert reply.json["error"] == "service_unavailable"


def test_a_throttled_signup_writes_nothing_and_a_retry_succeeds(api, dynamodb, table_names):
    inject(dynamodb, "TransactWriteItems", lambda p: client_error("ThrottlingException"), times=1)
    assert api.signup().status == 503
    assert dynamodb.scan(TableName=table_names["users"])["Count"] == 0
    assert api.signup().status == 201


def test_a_transaction_conflict_is_retried(api, dynamodb):
    conflict = {"Error": {"Code": "TransactionCanceledException", "Message": "injected"},
                "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"},
                                        {"Code": "None"}],
                "ResponseMetadata": {"HTTPStatusCode": 400}}
    from faults import answer

    seen = inject(dynamodb, "TransactWriteItems", lambda p: answer(400, conflict), times=2)
    assert api.signup().status == 201
    assert len(seen) == 2


def test_a_write_meeting_a_transaction_in_progress_is_a_503(api, dynamodb):
    token = api.user()
    other = api.login().json["token_id"]
    inject(dynamodb, "DeleteItem", lambda p: client_error("TransactionConflictException"))
    reply = api.call("DELETE", f"/api/v1/tokens/{other}", token=token)
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "1"
