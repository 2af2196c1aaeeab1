"""End to end: the real `make run` stack, driven over HTTP.

Few and well chosen: each starts processes, so each covers what only a real
chalice local and a real DynamoDB server can show.
"""
import os
import re
import signal
import subprocess
import time

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from stack import ROOT, Stack, free_port, port_open

pytestmark = pytest.mark.e2e

ADMIN = {"ADMIN_USERNAME": "root", "ADMIN_EMAIL": "root@example.com",
         "ADMIN_PASSWORD": "root password 1"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("stack") / "run.log", **ADMIN).start()
    yield running
    running.stop()


def post(stack, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(stack.base + path, json=body, headers=headers, timeout=10)


def walkthrough():
    """The curl walkthrough block of the README, as a reader would paste it."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.search(r"<!-- walkthrough -->\s*```sh\n(.*?)```", text, re.S).group(1)


def test_the_readme_walkthrough_works_verbatim(stack):
    script = walkthrough().replace("127.0.0.1:8000", f"127.0.0.1:{stack.port}")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert '"username":"alice"' in out
    assert out.count('"revoked":1') == 1 and '"revoked":2' in out
    assert out.rstrip().endswith("403")


def test_the_admin_from_the_environment_exists_before_the_first_request(stack):
    reply = post(stack, "/api/v1/login", {"username": "root", "password": "root password 1"})
    assert reply.status_code == 200
    me = requests.get(stack.base + "/api/v1/users/me",
                      headers={"Authorization": f"Bearer {reply.json()['token']}"}, timeout=10)
    assert me.json()["roles"] == ["admin"]


def test_the_tutorial_scenario_over_http(stack):
    body = {"username": "carol", "email": "carol@example.com", "password": "carol password"}
    assert post(stack, "/api/v1/signup", body).status_code == 201
    login = {"username": "CAROL", "password": "carol password"}
    with requests.Session() as laptop, requests.Session() as phone:
        a = post(stack, "/api/v1/login", login).json()
        b = post(stack, "/api/v1/login", login).json()
        laptop.headers["Authorization"] = f"Bearer {a['token']}"
        phone.headers["Authorization"] = b["token"]  # the tutorial's bare form
        assert phone.get(stack.base + "/api/v1/users/me").status_code == 200
        listed = laptop.get(stack.base + "/api/v1/tokens").json()["tokens"]
        assert [t["current"] for t in listed] == [False, True]
        # Revocation is immediate, on a connection that was already open.
        revoked = laptop.delete(f"{stack.base}/api/v1/tokens/{b['token_id']}")
        assert revoked.json() == {"revoked": 1}
        assert phone.get(stack.base + "/api/v1/users/me").status_code == 403
        assert laptop.post(stack.base + "/api/v1/logout").json() == {"revoked": 1}
        assert laptop.get(stack.base + "/api/v1/users/me").status_code == 403
        assert requests.get(stack.base + "/api/v1/users/me").status_code == 401


def test_ctrl_c_stops_everything_it_started(tmp_path):
    stack = Stack(tmp_path / "run.log").start()
    assert port_open(stack.port) and port_open(stack.dynamodb_port)
    stack.stop(sig=signal.SIGINT)
    deadline = time.monotonic() + 10
    while (port_open(stack.port) or port_open(stack.dynamodb_port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_open(stack.port) and not port_open(stack.dynamodb_port), stack.output()
    leftover = subprocess.run(["pgrep", "-f", f"--port {stack.port}"], capture_output=True)
    assert leftover.stdout == b""


def test_a_configured_dynamodb_is_used_and_none_is_embedded(tmp_path):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        from chalicelib import tables

        tables.create_tables(client, {"users": tables.stage_table_names(ROOT, "local")["users"]})
        stack = Stack(tmp_path / "run.log", AWS_ENDPOINT_URL_DYNAMODB=endpoint,
                      AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x").start()
        try:
            assert not port_open(stack.dynamodb_port)
            body = {"username": "dave", "email": "dave@example.com", "password": "dave password"}
            assert post(stack, "/api/v1/signup", body).status_code == 201
            names = client.list_tables()["TableNames"]
            assert set(tables.stage_table_names(ROOT, "local").values()) <= set(names)
            assert "already there" in stack.output() and "created" in stack.output()
        finally:
            stack.stop()
    finally:
        server.stop()
