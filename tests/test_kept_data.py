"""The embedded DynamoDB's data outlives it (devserver/kept_data.py): saved
whole and atomically, loaded at the next start, refused in one line when it
cannot be read, and dropped by `make reset` only while no `make run` serves
on it."""
import json
import os
import socket
import time
import uuid

import boto3
import pytest
from botocore.config import Config

from deploy import tables
from devserver import kept_data, serve
from devserver.embedded_dynamodb import EmbeddedDynamoDB


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_file, **settings):
    return EmbeddedDynamoDB("127.0.0.1", _free_port(), data_file=str(data_file),
                            **settings).start()


def _client(embedded):
    return boto3.client("dynamodb", endpoint_url=embedded.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}))


def _forget(names):
    """Drop the tables from moto's memory, as a new process starts without them."""
    from moto.dynamodb.models import dynamodb_backends

    for regions in dynamodb_backends.values():
        for backend in regions.values():
            for name in names.values():
                backend.tables.pop(name, None)


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    made = {kind: f"{kind}-{suffix}" for kind in tables.DEFINITIONS}
    yield made
    _forget(made)


@pytest.fixture
def data_file(tmp_path):
    return tmp_path / "local" / "dynamodb.json"


def _put_user(client, names, pk, **extra):
    client.put_item(TableName=names["users"], Item={"pk": {"S": pk}, **extra})


def _users(client, names):
    return sorted(item["pk"]["S"] for item in client.scan(TableName=names["users"])["Items"])


def test_every_item_and_the_ttl_setting_come_back_after_a_restart(data_file, names):
    embedded = _start(data_file)
    client = _client(embedded)
    tables.create_tables(client, names)
    _put_user(client, names, "user#alice", roles={"L": [{"S": "admin"}]},
              hash={"B": b"\x00\xffbytes"}, profile={"M": {"n": {"N": "3"}}})
    client.put_item(TableName=names["tokens"],
                    Item={"user_id": {"S": "u1"}, "token_id": {"S": "t1"}})
    before = {name: client.scan(TableName=name)["Items"] for name in names.values()}
    embedded.stop()
    _forget(names)

    again = _start(data_file)
    try:
        client = _client(again)
        assert {name: client.scan(TableName=name)["Items"] for name in names.values()} == before
        assert client.describe_time_to_live(TableName=names["events"])[
            "TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED",
                                         "AttributeName": tables.TTL_ATTRIBUTE}
        # The keys are the table's own: a read by key finds the item.
        assert client.get_item(TableName=names["tokens"], Key={
            "user_id": {"S": "u1"}, "token_id": {"S": "t1"}})["Item"]["token_id"] == {"S": "t1"}
    finally:
        again.stop()


def test_a_write_reaches_the_file_within_seconds_without_a_stop(data_file, names):
    """What a `kill -9` loses: at most ``save_seconds`` of writes."""
    embedded = _start(data_file, save_seconds=0.1)
    try:
        client = _client(embedded)
        tables.create_tables(client, names)
        _put_user(client, names, "user#bob")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if data_file.exists() and "user#bob" in data_file.read_text():
                break
            time.sleep(0.05)
        saved = kept_data.read(str(data_file))
        assert [t["items"] for t in saved["tables"] if t["name"] == names["users"]] == [
            [{"pk": {"S": "user#bob"}}]]
        # Reads change nothing, so the file is left alone.
        written = data_file.stat().st_mtime_ns
        client.get_item(TableName=names["users"], Key={"pk": {"S": "user#bob"}})
        _users(client, names)
        time.sleep(0.4)
        assert data_file.stat().st_mtime_ns == written
    finally:
        embedded.stop()


def test_items_past_their_ttl_are_gone_once_loaded(data_file, names):
    embedded = _start(data_file)
    client = _client(embedded)
    tables.create_tables(client, names)
    now = int(time.time())
    for pk, expires in (("gone", now - 10), ("kept", now + 3600), ("forever", None)):
        _put_user(client, names, pk, **({} if expires is None else
                                        {"expires_at": {"N": str(expires)}}))
    embedded.stop()
    _forget(names)

    again = _start(data_file)
    try:
        assert _users(_client(again), names) == ["forever", "kept"]
    finally:
        again.stop()
    assert "gone" not in data_file.read_text()


@pytest.mark.parametrize("content, cause", [
    ('{"format": "login-service embedded DynamoDB", "version": 1, "tab', "not JSON"),
    ('{"format": "login-service embedded DynamoDB", "version": 2, "tables": []}',
     "another version"),
    ('{"format": "login-service embedded DynamoDB", "version": 1, "tables": [{"name": "x"}]}',
     "KeyError"),
    ("[1, 2]", "not a data file"),
])
def test_a_file_that_cannot_be_read_stops_the_start_in_one_line_and_is_left_as_it_is(
        data_file, content, cause):
    data_file.parent.mkdir()
    data_file.write_text(content)
    embedded = EmbeddedDynamoDB("127.0.0.1", _free_port(), data_file=str(data_file))
    with pytest.raises(kept_data.Unusable) as raised:
        embedded.start()
    message = str(raised.value)
    assert "\n" not in message and str(data_file) in message and cause in message
    assert "make reset" in message
    embedded.stop()
    assert data_file.read_text() == content
    # The lock went with the failed start: another start is refused for the
    # file, not for a lock nobody holds.
    with pytest.raises(kept_data.Unusable, match="cannot be read"):
        _start(data_file)


def test_make_run_stops_on_an_unreadable_file_with_one_line_and_no_traceback(
        tmp_path, monkeypatch, capsys):
    (tmp_path / "dynamodb.json").write_text("not json")
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DYNAMODB_PORT", str(_free_port()))
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.setattr(serve.subprocess, "Popen", lambda *a, **k: pytest.fail("started"))
    assert serve.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(tmp_path / "dynamodb.json") in err and "make reset" in err
    assert (tmp_path / "dynamodb.json").read_text() == "not json"


def test_a_write_that_fails_half_way_leaves_the_previous_file_and_no_other(tmp_path,
                                                                           monkeypatch):
    path = tmp_path / "dynamodb.json"
    kept_data.write(str(path), {"tables": ["before"]})

    def fsync(descriptor):
        """The new file written but not yet on disk: a full disk, or a crash."""
        raise OSError("No space left on device")

    monkeypatch.setattr(kept_data.os, "fsync", fsync)
    with pytest.raises(OSError):
        kept_data.write(str(path), {"tables": ["after" * 100_000]})
    assert json.loads(path.read_text()) == {"tables": ["before"]}
    assert os.listdir(tmp_path) == ["dynamodb.json"]


def test_the_file_is_readable_by_its_owner_only(data_file, names):
    embedded = _start(data_file)
    tables.create_tables(_client(embedded), names)
    embedded.stop()
    assert data_file.stat().st_mode & 0o077 == 0


def test_one_process_serves_on_a_file_and_reset_refuses_while_it_does(data_file, names,
                                                                       capsys):
    embedded = _start(data_file)
    try:
        tables.create_tables(_client(embedded), names)
        embedded.save()
        with pytest.raises(kept_data.Unusable, match=f"in use by make run \\(pid {os.getpid()}"):
            _start(data_file)
        assert kept_data.reset(str(data_file)) == 1
        err = capsys.readouterr().err
        assert err.startswith("make reset refused: ") and err.count("\n") == 1
        assert f"kill {os.getpid()}" in err
        assert data_file.exists()
    finally:
        embedded.stop()

    assert kept_data.reset(str(data_file)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dropped {data_file} (") and names["users"] in out
    assert not data_file.exists()
    assert kept_data.reset(str(data_file)) == 0
    assert capsys.readouterr().out == f"nothing to drop: no {data_file}\n"


def test_reset_drops_a_file_that_cannot_be_read(data_file, capsys):
    data_file.parent.mkdir()
    data_file.write_text("{")
    assert kept_data.reset(str(data_file)) == 0
    assert "(unreadable)" in capsys.readouterr().out and not data_file.exists()
