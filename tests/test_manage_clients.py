"""manage.py create-client, list-clients, delete-client: the introspection
clients of resource servers."""
import base64
import io
import json

import pytest

import manage


@pytest.fixture
def cli(dynamodb, monkeypatch):
    """manage.main against the mocked DynamoDB."""
    monkeypatch.setattr("devserver.stage.use_endpoint", lambda endpoint: None)

    def run(*argv):
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        return manage.main(list(argv))
    return run


def create(cli, capsys, name="orders"):
    assert cli("create-client", name) == 0
    return json.loads(capsys.readouterr().out)


def introspect(api, client_id, secret, token):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return api.call("POST", "/api/v1/introspect", body={"token": token},
                    headers={"Authorization": f"Basic {basic}"})


def test_create_client_prints_exactly_one_json_object_with_id_and_secret(cli, capsys,
                                                                       monkeypatch):
    """Its standard output is a script's to read: the service's log lines,
    which go to standard output everywhere else, go to standard error."""
    import logging
    import sys

    from chalicelib import audit

    (handler,) = [h for h in audit.log.handlers if type(h) is logging.StreamHandler]
    monkeypatch.setattr(handler, "stream", sys.stdout)  # as in a process of its own
    assert cli("create-client", "orders") == 0
    assert handler.stream is sys.stdout
    captured = capsys.readouterr()
    assert '"event":"client_created"' in captured.err
    out = captured.out
    assert out.count("\n") == 1
    made = json.loads(out)
    assert set(made) == {"client_id", "client_secret"}
    assert len(made["client_secret"]) >= 43  # 256 random bits, URL-safe base64


def test_the_new_client_can_introspect(cli, capsys, api):
    made = create(cli, capsys)
    token = api.user()
    reply = introspect(api, made["client_id"], made["client_secret"], token)
    assert reply.json["active"] is True


def test_only_a_hash_of_the_secret_is_kept(cli, capsys, dynamodb, table_names):
    made = create(cli, capsys)
    dump = json.dumps(dynamodb.scan(TableName=table_names["users"])["Items"])
    assert made["client_id"] in dump and made["client_secret"] not in dump


def test_list_clients_shows_ids_names_and_times_never_a_secret_or_hash(cli, capsys):
    first, second = create(cli, capsys, "orders"), create(cli, capsys, "billing")
    assert cli("list-clients") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(c["client_id"], c["name"]) for c in lines} == {
        (first["client_id"], "orders"), (second["client_id"], "billing")}
    assert all(set(c) == {"client_id", "name", "created_at"} for c in lines)


def test_list_clients_of_none_prints_nothing(cli, capsys):
    assert cli("list-clients") == 0
    assert capsys.readouterr().out == ""


def test_a_deleted_client_is_refused_on_its_next_call(cli, capsys, api):
    made = create(cli, capsys)
    token = api.user()
    assert introspect(api, made["client_id"], made["client_secret"], token).status == 200
    assert cli("delete-client", made["client_id"]) == 0
    reply = introspect(api, made["client_id"], made["client_secret"], token)
    assert (reply.status, reply.json["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("client_id", ["0" * 32, "not-an-id"])
def test_delete_client_refuses_an_unknown_id(cli, capsys, client_id):
    assert cli("delete-client", client_id) == 1
    err = capsys.readouterr().err
    assert "refused" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("name", ["", "x" * 101, "tab\there"])
def test_create_client_refuses_a_bad_name_and_writes_nothing(cli, capsys, dynamodb,
                                                              table_names, name):
    assert cli("create-client", name) == 1
    assert capsys.readouterr().out == ""
    assert dynamodb.scan(TableName=table_names["users"])["Count"] == 0
