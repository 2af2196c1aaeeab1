"""What DynamoDB trouble looks like from outside: a 503, never a lie; a missing
table, a loud 500."""
import json
import logging

import pytest

from conftest import PASSWORD
from faults import all_unprocessed, client_error, inject, timeout

ME = "/api/v1/users/me"


def small_transactions(monkeypatch):
    """Transactions of 3 writes: a revoke-all of more than one token batches
    the rest (DynamoDB's limit is 100, reached only by many tokens)."""
    from chalicelib import unit_of_work

    monkeypatch.setattr(unit_of_work, "TRANSACTION_LIMIT", 3)


def live(api, tokens):
    return [api.call("GET", ME, token=t).status == 200 for t in tokens]


def test_unprocessed_items_are_retried_until_every_token_is_gone(api, dynamodb, monkeypatch):
    tokens = [api.user()] + [api.token() for _ in range(29)]
    small_transactions(monkeypatch)
    seen = inject(dynamodb, "BatchWriteItem", all_unprocessed, times=2)
    reply = api.call("DELETE", "/api/v1/tokens", token=tokens[0])
    assert reply.status == 200 and reply.json == {"revoked": 30}
    assert len(seen) == 2
    assert not any(live(api, tokens))


def test_revoke_all_never_reports_success_with_survivors(api, dynamodb, monkeypatch):
    tokens = [api.user()] + [api.token() for _ in range(2)]
    small_transactions(monkeypatch)
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
    # The mark that stops logins before an account's deletion, a plain write.
    inject(dynamodb, "UpdateItem", lambda p: client_error("TransactionConflictException"))
    reply = api.call("DELETE", "/api/v1/users/me", token=token, body={"password": PASSWORD})
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "1"


# A missing table is a deployment's mistake, not an outage.

def table_errors(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.name == "login-service" and r.levelno == logging.ERROR]


def test_a_missing_table_is_a_500_logged_with_its_name(api, dynamodb, table_names, caplog):
    api.signup()
    inject(dynamodb, "BatchGetItem", lambda p: client_error("ResourceNotFoundException"))
    reply = api.login()
    assert reply.status == 500
    assert reply.json == {"error": "internal_error", "message": "An internal error occurred."}
    assert "Retry-After" not in reply.headers
    assert {"event": "table_not_found", "operation": "batch_get_item",
            "tables": [table_names["users"]]} in table_errors(caplog)


def test_a_missing_table_gives_the_authorizer_no_verdict(api, dynamodb, table_names, caplog):
    from chalicelib import authorizer

    token = api.user()
    inject(dynamodb, "BatchGetItem", lambda p: client_error("ResourceNotFoundException"))
    with pytest.raises(authorizer.Undecided):
        authorizer.decide(f"Bearer {token}")
    assert [(e["event"], e.get("tables") or e.get("type")) for e in table_errors(caplog)] == [
        ("table_not_found", sorted([table_names["tokens"], table_names["users"]])),
        ("authorizer_error", "ConfigurationError")]


def unavailable_lines(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.name == "login-service" and "unavailable" in r.getMessage()]


def test_a_503_logs_one_line_naming_the_operation_the_code_and_the_attempts(api, dynamodb,
                                                                            caplog):
    caplog.set_level(logging.INFO, logger="login-service")
    api.signup()
    inject(dynamodb, "BatchGetItem", lambda p: client_error("ThrottlingException"), times=1)
    assert api.login().status == 503
    assert unavailable_lines(caplog) == [{
        "event": "service_unavailable", "route": "login", "operation": "batch_get_item",
        "code": "ThrottlingException", "attempts": 1}]


def test_a_timeouts_503_names_the_timeout_and_the_attempts_botocore_made(api, dynamodb, caplog):
    caplog.set_level(logging.INFO, logger="login-service")
    token = api.user()
    inject(dynamodb, "TransactWriteItems", timeout)
    assert api.call("POST", "/api/v1/logout", token=token).status == 503
    [line] = unavailable_lines(caplog)
    assert (line["route"], line["operation"], line["code"], line["attempts"]) == (
        "logout", "transact_write_items", "ReadTimeoutError", 3)


def test_the_authorizers_503_names_what_failed(api, dynamodb, caplog):
    caplog.set_level(logging.INFO, logger="login-service")
    token = api.user()
    inject(dynamodb, "BatchGetItem", lambda p: client_error("InternalServerError", 500))
    assert api.call("GET", ME, token=token).status == 503
    [line] = [json.loads(r.getMessage()) for r in caplog.records
              if r.name == "login-service" and "authorizer_error" in r.getMessage()]
    assert (line["operation"], line["code"]) == ("batch_get_item", "InternalServerError")
