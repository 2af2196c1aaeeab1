"""End to end: the real `make run` stack, driven over HTTP.

Few and well chosen: each starts processes, so each covers what only a real
chalice local and a real DynamoDB server can show.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import boto3
import pytest
import requests

from servers import FakeAWS, port_open
from stack import ROOT, Stack, module_stack

pytestmark = pytest.mark.e2e

ADMIN = {"ADMIN_USERNAME": "root", "ADMIN_EMAIL": "root@example.com",
         "ADMIN_PASSWORD": "root password 1"}


stack = module_stack("stack", **ADMIN)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A second stack, with settings other than every default."""
    running = Stack(tmp_path_factory.mktemp("tuned") / "run.log", BCRYPT_ROUNDS="5",
                    MAX_TOKENS_PER_USER="3", **ADMIN).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def brief(tmp_path_factory):
    """A third stack, whose tokens live 3 s without use and 8 s at most."""
    running = Stack(tmp_path_factory.mktemp("brief") / "run.log", TOKEN_LIFETIME_SECONDS="3",
                    TOKEN_MAX_LIFETIME_SECONDS="8").start()
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


def tool(name):
    return os.path.join(ROOT, ".venv", "bin", name)


def test_a_client_generated_from_the_served_document_type_checks_and_walks_through(
        stack, tmp_path):
    """A new user's path: generate a client with openapi-python-client from
    the served document, type-check a program using it with mypy --strict,
    run it. tests/e2e/client_walkthrough.py is the README walkthrough in it."""
    doc = tmp_path / "openapi.json"
    doc.write_bytes(requests.get(stack.base + "/api/v1/openapi.json", timeout=10).content)
    # No post hooks: they would reformat the generated code with ruff,
    # which the check does not need.
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n")
    generated = subprocess.run(
        [tool("openapi-python-client"), "generate", "--path", str(doc), "--meta", "none",
         "--config", str(config), "--output-path", str(tmp_path / "login_service_client"),
         "--fail-on-warning"], capture_output=True, text=True, timeout=120)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    program = tmp_path / "client_walkthrough.py"
    shutil.copy(os.path.join(ROOT, "tests", "e2e", "client_walkthrough.py"), program)
    assert "cast(" not in program.read_text() and "type: ignore" not in program.read_text()

    typed = subprocess.run(
        [tool("mypy"), "--strict", "--no-incremental", program.name, "login_service_client"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert typed.returncode == 0, typed.stdout + typed.stderr
    assert typed.stdout.startswith("Success: no issues found")

    run = subprocess.run([tool("python"), program.name, stack.base, "walker"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "walkthrough done"


def test_the_admin_from_the_environment_exists_before_the_first_request(stack):
    reply = post(stack, "/api/v1/login", {"username": "root", "password": "root password 1"})
    assert reply.status_code == 200
    me = requests.get(stack.base + "/api/v1/users/me",
                      headers={"Authorization": f"Bearer {reply.json()['token']}"}, timeout=10)
    assert me.json()["roles"] == ["admin"]


def test_the_admin_from_the_environment_is_hashed_at_the_cost_the_stack_runs_at(tuned):
    from deploy import tables

    client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{tuned.dynamodb_port}",
                          region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    item = client.get_item(TableName=tables.stage_table_names(ROOT, "local")["users"],
                           Key={"pk": {"S": "username#root"}})["Item"]
    assert item["password_hash"]["S"].startswith("$2b$05$")


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


def manage(stack, *argv):
    """manage.py's standard output, run as an operator runs it beside make run."""
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=stack.env,
                          capture_output=True, text=True, check=True, timeout=60).stdout


def test_a_resource_server_introspects_as_rfc_7662_client_libraries_do(stack):
    """The requests an RFC 7662 client (Authlib's, for one) sends: a form of
    token and token_type_hint, its type without a space before the charset,
    the client in HTTP Basic or, as client_secret_post, in the form; with a
    client that manage.py made in make run's DynamoDB."""
    made = json.loads(manage(stack, "create-client", "orders-api"))
    client = {"client_id": made["client_id"], "client_secret": made["client_secret"]}
    token = signed_up(stack, "reader").json()["token"]
    form = {"token": token, "token_type_hint": "access_token"}
    headers = {"Accept": "application/json",
               "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}

    def introspect(data, auth=None):
        return requests.post(stack.base + "/api/v1/introspect", data=data, auth=auth,
                             headers=headers, timeout=10)

    for reply in (introspect(form, auth=(made["client_id"], made["client_secret"])),
                  introspect({**form, **client})):
        assert reply.status_code == 200, reply.text
        assert (reply.json()["active"], reply.json()["roles"]) == (True, [])
    wrong = introspect({**form, **client, "client_secret": "x" * 43})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.headers["WWW-Authenticate"].startswith("Basic ")
    assert wrong.json()["error_description"] == wrong.json()["message"]
    both = introspect({**form, **client}, auth=(made["client_id"], made["client_secret"]))
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")


def test_the_introspecting_resource_server_of_the_docs_reads_live_roles(stack):
    """docs/protect-your-api.md's Python client, run as written against make run."""
    with open(os.path.join(ROOT, "docs", "protect-your-api.md"), encoding="utf-8") as f:
        code = re.search(r"<!-- introspection client -->\s*```python\n(.*?)```", f.read(),
                         re.S).group(1)
    made = json.loads(manage(stack, "create-client", "orders-api"))
    server = {"CLIENT_ID": made["client_id"], "CLIENT_SECRET": made["client_secret"]}
    exec(code, server)  # the documentation's own code, as a reader would paste it
    server["INTROSPECT"] = stack.base + "/api/v1/introspect"
    token = signed_up(stack, "roleful").json()["token"]
    assert server["roles"](server["caller"](token)) == []
    manage(stack, "grant-admin", "roleful")
    assert server["roles"](server["caller"](token)) == ["admin"]
    server["CLIENT_SECRET"] = "x" * 43
    with pytest.raises(RuntimeError, match="Client authentication failed"):
        server["caller"](token)


def test_a_bad_setting_stops_make_run_at_once_with_one_line_naming_it(tmp_path):
    stack = Stack(tmp_path / "run.log", TOKEN_LIFETIME_SECONDS="abc")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited early"):
        stack.start(timeout=60)
    assert time.monotonic() - started < 20
    assert stack.process.returncode != 0
    output = stack.output()
    assert "TOKEN_LIFETIME_SECONDS" in output and "Traceback" not in output
    assert not port_open(stack.dynamodb_port)


def signed_up(stack, name):
    body = {"username": name, "email": f"{name}@example.com", "password": f"{name} password 1"}
    assert post(stack, "/api/v1/signup", body).status_code == 201
    return post(stack, "/api/v1/login", {"username": name, "password": f"{name} password 1"})


def test_logout_with_a_body_over_64_kb_is_413_and_the_token_lives_on(stack):
    token = signed_up(stack, "heavy").json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    reply = requests.post(stack.base + "/api/v1/logout", data=b"x" * (65 * 1024),
                          headers=headers, timeout=10)
    assert reply.status_code == 413 and reply.json()["error"] == "payload_too_large"
    assert requests.get(stack.base + "/api/v1/users/me", headers=headers,
                        timeout=10).status_code == 200


def test_a_login_answer_says_no_store(stack):
    assert signed_up(stack, "private").headers["Cache-Control"] == "no-store"


def test_a_utf16_login_is_400(stack):
    signed_up(stack, "wide")
    body = json.dumps({"username": "wide", "password": "wide password 1"}).encode("utf-16")
    reply = requests.post(stack.base + "/api/v1/login", data=body,
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_body"


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
    server = FakeAWS().start()
    try:
        endpoint = server.endpoint
        client = server.client("dynamodb")
        from deploy import tables

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


def deployed(kind):
    """(status, headers, body) of the template's Gateway Response ``kind``."""
    from deploy.template import merge_template

    api = merge_template("local")["Resources"]["RestAPI"]["Properties"]
    props = api["DefinitionBody"]["x-amazon-apigateway-gateway-responses"][kind]
    headers = {name.removeprefix("gatewayresponse.header."): value.strip("'")
               for name, value in props["responseParameters"].items()}
    return int(props["statusCode"]), headers, props["responseTemplates"]["application/json"].encode()


def answers_as_deployed(reply, kind):
    status, headers, body = deployed(kind)
    assert reply.status_code == status, reply.content
    assert {name: reply.headers.get(name) for name in headers} == headers
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.content == body


def test_auth_failures_get_the_deployed_gateway_responses(stack):
    me = stack.base + "/api/v1/users/me"
    answers_as_deployed(requests.get(me, timeout=10), "UNAUTHORIZED")
    answers_as_deployed(requests.get(me, headers={"Authorization": "Bearer a.b.c"}, timeout=10),
                        "ACCESS_DENIED")
    for headers in ({}, {"Authorization": "Bearer a.b.c"},
                    {"Authorization": "Bearer tökén".encode()}):  # chalice local crashed here
        answers_as_deployed(requests.get(stack.base + "/api/v1/nothing-here", headers=headers,
                                         timeout=10), "MISSING_AUTHENTICATION_TOKEN")
    preflight = requests.options(me, headers={"Origin": "https://example.com",
                                              "Access-Control-Request-Method": "GET"}, timeout=10)
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == "*"


def test_an_empty_authorization_header_is_the_deployed_401(stack):
    """API Gateway takes a blank identity source for a missing one; a 403
    would tell the client to drop its token."""
    answers_as_deployed(requests.get(stack.base + "/api/v1/users/me",
                                     headers={"Authorization": ""}, timeout=10), "UNAUTHORIZED")


def log_lines(stack):
    """The service's structured lines in make run's output (each a JSON object)."""
    found = []
    for line in stack.output().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return [line for line in found if isinstance(line, dict) and "event" in line]


def test_make_run_prints_the_service_log_lines(stack):
    body = {"username": "logan", "email": "logan@example.com", "password": "logan password"}
    assert post(stack, "/api/v1/signup", body).status_code == 201
    login = post(stack, "/api/v1/login", {"username": "logan", "password": "logan password"})
    user_id = requests.get(stack.base + "/api/v1/users/me", timeout=10, headers={
        "Authorization": f"Bearer {login.json()['token']}"}).json()["id"]
    lines = log_lines(stack)
    assert {"event": "login", "user_id": user_id, "token_id": login.json()["token_id"],
            "evicted": 0} in lines
    requests_logged = [(r["method"], r["route"], r["status"]) for r in lines
                       if r["event"] == "request"]
    assert ("POST", "/api/v1/login", 200) in requests_logged
    assert login.json()["token"] not in stack.output()


def test_an_outage_is_a_503_and_the_session_survives_it(tmp_path):
    """A DynamoDB that goes away and comes back: meanwhile a live token gets
    503 with Retry-After (never the 403 that makes clients log out), and
    works again afterwards."""
    server = FakeAWS().start()
    stack = Stack(tmp_path / "run.log", AWS_ENDPOINT_URL_DYNAMODB=server.endpoint,
                  AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x").start()
    try:
        body = {"username": "erin", "email": "erin@example.com", "password": "erin password"}
        assert post(stack, "/api/v1/signup", body).status_code == 201
        token = post(stack, "/api/v1/login", {"username": "erin", "password": "erin password"})
        me = {"url": stack.base + "/api/v1/users/me", "timeout": 30,
              "headers": {"Authorization": f"Bearer {token.json()['token']}"}}
        assert requests.get(**me).status_code == 200
        server.stop()
        started = time.monotonic()
        answers_as_deployed(requests.get(**me), "AUTHORIZER_FAILURE")
        assert time.monotonic() - started < 15  # bounded by the client's retries
        assert deployed("AUTHORIZER_CONFIGURATION_ERROR") == deployed("AUTHORIZER_FAILURE")
        assert {("authorizer_error", "ServiceUnavailable", "batch_get_item")} <= {
            (line["event"], line.get("type"), line.get("operation")) for line in log_lines(stack)}
        server.start()  # on its port again, with every table as it was
        assert requests.get(**me).status_code == 200
    finally:
        stack.stop()
        server.stop()


def test_make_run_refuses_to_promote_a_non_admin_that_holds_the_admin_name(tmp_path,
                                                                           monkeypatch):
    """Open signup let someone register ADMIN_USERNAME first: make run stops
    with a message naming the problem, changes nothing and serves nothing."""
    from chalicelib import aws, service, stores
    from deploy import tables

    server = FakeAWS().start()
    try:
        endpoint = server.endpoint
        names = tables.stage_table_names(ROOT, "local")
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        monkeypatch.setenv("USERS_TABLE", names["users"])
        monkeypatch.setenv("TOKENS_TABLE", names["tokens"])
        monkeypatch.setenv("EVENTS_TABLE", names["events"])
        aws.reset()
        tables.create_tables(aws.dynamodb(), names)
        squatter = service.account.signup("root", "squatter@example.com", "squatter password")
        before = aws.dynamodb().scan(TableName=names["users"])["Items"]
        stack = Stack(tmp_path / "run.log", AWS_ENDPOINT_URL_DYNAMODB=endpoint,
                      AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", **ADMIN)
        try:
            with pytest.raises(RuntimeError, match="exited early"):
                stack.start()
        finally:
            stack.log.close()
        out = stack.output()
        assert stack.process.returncode != 0
        assert "refused to start" in out and "ADMIN_USERNAME 'root'" in out, out
        assert "Traceback" not in out and "Serving on" not in out
        assert not port_open(stack.port) and not port_open(stack.dynamodb_port)
        leftover = subprocess.run(["pgrep", "-f", f"--port {stack.port}"], capture_output=True)
        assert leftover.stdout == b""
        assert aws.dynamodb().scan(TableName=names["users"])["Items"] == before
        assert stores.users().get_user(squatter.id).roles == []
    finally:
        aws.reset()
        server.stop()


def test_fuzzing_finds_no_server_error_and_no_response_off_the_document(stack):
    """schemathesis drives every operation of the OpenAPI document against
    the running stack, bounded, with an admin's token. Operations that would
    end that token's own session (logout, revoke-all) are left out."""
    token = post(stack, "/api/v1/login", {"username": "root", "password": "root password 1"})
    run = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "schemathesis"), "run",
         f"{stack.base}/api/v1/openapi.json",
         "-H", f"Authorization: Bearer {token.json()['token']}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         # The coverage phase also sends TRACE, which chalice local's stdlib
         # HTTP server answers 501 before the app can; see the README.
         "--phases", "examples,fuzzing", "--max-examples", "25", "--seed", "7",
         "--exclude-operation-id", "logout", "--exclude-operation-id", "revoke_tokens",
         "--report", "junit", "--report-dir", str(stack.log_path.parent)],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-5000:]


def burst(stack, count, send):
    """Open ``count`` keep-alive connections first (chalice local listens with
    a backlog of 5), then release every ``send(session, i)`` at once."""
    sessions = [requests.Session() for _ in range(count)]
    for session in sessions:
        session.get(stack.base + "/", timeout=10)
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        barrier.wait()
        results[i] = send(sessions[i], i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for session in sessions:
        session.close()
    return results


def test_a_token_in_parallel_use_outlives_its_lifetime_until_its_cap(brief):
    """Four clients use one token at once, over twice its 3-second lifetime:
    every request passes, each use moving its expiry; a token left unused
    since the same login is denied; at the 8-second cap the used one is too."""
    login = {"username": "steady", "password": "steady password"}
    body = {**login, "email": "steady@example.com"}
    assert post(brief, "/api/v1/signup", body).status_code == 201
    used, idle = (post(brief, "/api/v1/login", login).json() for _ in range(2))
    logged_in = time.time()
    statuses = []

    def client():
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {used['token']}"
            while time.time() < logged_in + 6.5:
                statuses.append(session.get(brief.base + "/api/v1/users/me",
                                            timeout=10).status_code)
                time.sleep(0.2)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(statuses) >= 40 and set(statuses) == {200}
    listed = requests.get(brief.base + "/api/v1/tokens", timeout=10,
                          headers={"Authorization": f"Bearer {used['token']}"}).json()["tokens"]
    expiry = {t["id"]: t["expires_at"] for t in listed}
    assert idle["token_id"] not in expiry  # unused for over 3 s: expired, so not listed
    assert expiry[used["token_id"]] > used["expires_at"]
    assert requests.get(brief.base + "/api/v1/users/me", timeout=10, headers={
        "Authorization": f"Bearer {idle['token']}"}).status_code == 403
    time.sleep(max(0.0, logged_in + 8.1 - time.time()))
    assert requests.get(brief.base + "/api/v1/users/me", timeout=10, headers={
        "Authorization": f"Bearer {used['token']}"}).status_code == 403


def test_twenty_parallel_signups_of_one_name_give_exactly_one_user(stack):
    def signup(session, i):
        body = {"username": "racer", "email": f"racer{i}@example.com", "password": "race password"}
        return session.post(stack.base + "/api/v1/signup", json=body, timeout=30).status_code

    statuses = burst(stack, 20, signup)
    assert sorted(statuses) == [201] + [409] * 19


def test_a_revoke_all_racing_with_requests_leaves_no_earlier_token_alive(stack):
    body = {"username": "busy", "email": "busy@example.com", "password": "busy password"}
    assert post(stack, "/api/v1/signup", body).status_code == 201
    login = {"username": "busy", "password": "busy password"}
    tokens = [post(stack, "/api/v1/login", login).json()["token"] for _ in range(12)]

    def send(session, i):
        session.headers["Authorization"] = f"Bearer {tokens[i % len(tokens)]}"
        if i == 0:
            return session.delete(stack.base + "/api/v1/tokens", timeout=30).status_code
        # Never-used tokens: each first use also writes last_used_at, racing
        # the deletes (the write is conditional on the token still existing).
        return session.get(stack.base + "/api/v1/users/me", timeout=30).status_code

    statuses = burst(stack, 20, send)
    assert statuses[0] == 200
    assert set(statuses[1:]) <= {200, 403}
    for token in tokens:
        reply = requests.get(stack.base + "/api/v1/users/me",
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert reply.status_code == 403


def guesses(stack, username, passwords):
    """Every password of ``passwords`` tried at once for ``username``; the statuses."""
    def send(session, i):
        body = {"username": username, "password": passwords[i]}
        return session.post(stack.base + "/api/v1/login", json=body, timeout=30).status_code
    return burst(stack, len(passwords), send)


def checks_logged(stack, user_id):
    """The passwords of ``user_id`` checked, from the stack's log: each check
    ends in a failed login or a login."""
    return sum(1 for line in log_lines(stack)
               if line["event"] in ("login_failed", "login") and line.get("user_id") == user_id)


def test_forty_parallel_wrong_guesses_check_five_passwords_then_lock(stack):
    body = {"username": "guesser", "email": "guesser@example.com", "password": "guesser password"}
    user_id = post(stack, "/api/v1/signup", body).json()["id"]
    statuses = guesses(stack, "guesser", [f"wrong guess {i}" for i in range(40)])
    assert sorted(statuses) == [401] * 5 + [429] * 35
    assert checks_logged(stack, user_id) == 5
    right = post(stack, "/api/v1/login",
                 {"username": "guesser", "password": "guesser password"})
    assert right.status_code == 429
    assert 1 <= int(right.headers["Retry-After"]) <= 900


def test_the_right_password_hidden_in_a_burst_cannot_log_in_past_the_lock(stack):
    body = {"username": "hidden", "email": "hidden@example.com", "password": "hidden password"}
    user_id = post(stack, "/api/v1/signup", body).json()["id"]
    for _ in range(4):
        assert post(stack, "/api/v1/login",
                    {"username": "hidden", "password": "wrong"}).status_code == 401
    passwords = ["wrong guess"] * 40
    passwords[23] = "hidden password"
    statuses = guesses(stack, "hidden", passwords)
    # One check was left before the lock: whichever request took it, every
    # other one, the right password's included unless it was that one, waits.
    assert statuses.count(429) == 39
    assert sorted(set(statuses)) in ([401, 429], [200, 429])
    assert checks_logged(stack, user_id) == 4 + 1


def test_bursts_of_parallel_right_logins_never_hold_more_than_the_cap(tuned):
    """MAX_TOKENS_PER_USER is 3 on this stack: three bursts of eight right
    logins at once leave at most three live tokens."""
    body = {"username": "crowd", "email": "crowd@example.com", "password": "crowd password"}
    assert post(tuned, "/api/v1/signup", body).status_code == 201
    issued = []

    def send(session, i):
        reply = session.post(tuned.base + "/api/v1/login", timeout=30,
                             json={"username": "crowd", "password": "crowd password"})
        if reply.status_code == 200:
            issued.append(reply.json()["token"])
        return reply.status_code

    for _ in range(3):
        statuses = burst(tuned, 8, send)
        # At most five passwords are checked at once; the others wait.
        assert 200 in statuses and set(statuses) <= {200, 429}, statuses
    live = [t for t in issued if requests.get(tuned.base + "/api/v1/users/me", timeout=10,
                                              headers={"Authorization": f"Bearer {t}"}
                                              ).status_code == 200]
    assert 1 <= len(live) <= 3, (len(issued), len(live))


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Written under build/ so that a test run leaves the work tree clean; the
# pictures in docs/screenshots/ are copies of these, refreshed by hand.
SCREENSHOTS = os.path.join(ROOT, "build", "screenshots")
PHONE_AGENT = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/131.0.6778.81 Mobile Safari/537.36")


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_sessions_page_in_chromium(stack):
    """Two browsers log in as one user; the first revokes the second, whose
    next click lands back on the login form. The phone names no device: its
    session shows the browser its User-Agent names (the raw text on hover),
    and the laptop's recent activity shows the revocation."""
    from playwright.sync_api import expect, sync_playwright

    body = {"username": "dana", "email": "dana@example.com", "password": "dana password 1"}
    assert post(stack, "/api/v1/signup", body).status_code == 201
    # Signup mails a verification link, and the mailer records that in the
    # log before the mail goes: once it is printed, the log holds no surprise.
    stack.link(body["email"], "verify")
    os.makedirs(SCREENSHOTS, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for device, agent in (("work laptop", None), ("", PHONE_AGENT)):
                context = browser.new_context(viewport={"width": 1000, "height": 900},
                                              **({"user_agent": agent} if agent else {}))
                page = context.new_page()
                page.goto(stack.base + "/")
                page.fill("#login-form [name=username]", "dana")
                page.fill("#login-form [name=password]", "dana password 1")
                page.fill("#login-form [name=description]", device)
                page.click("#login-form button")
                expect(page.locator("#signed-in")).to_be_visible()
                pages.append(page)
            laptop, phone = pages
            laptop.click("#refresh")
            rows = laptop.locator("#sessions tr")
            expect(rows).to_have_count(2)
            expect(laptop.locator("#sessions tr.current")).to_contain_text("work laptop")
            expect(laptop.locator("#sessions tr.current .badge")).to_have_text("this device")
            phone_row = laptop.locator("#sessions tr:not(.current) td.device")
            expect(phone_row).to_have_text("Chrome 131 on Android")
            expect(phone_row).to_have_attribute("title", PHONE_AGENT)
            expect(laptop.locator("#events tr")).to_have_count(3)
            expect(laptop.locator("#events tr[data-type=login]")).to_have_count(2)
            expect(laptop.locator("#events tr").first).to_contain_text("Signed in")
            expect(laptop.locator("#events tr").first).to_contain_text("Chrome 131 on Android")

            laptop.click("#sessions tr:not(.current) button.revoke")
            expect(rows).to_have_count(1)
            expect(laptop.locator("#message")).to_have_text("Session revoked.")
            revoked = laptop.locator("#events tr").first
            expect(revoked).to_have_attribute("data-type", "token_revoked")
            expect(revoked).to_contain_text("Session revoked")
            expect(revoked).to_contain_text("you")
            laptop.screenshot(path=os.path.join(SCREENSHOTS, "sessions.png"), full_page=True)

            phone.click("#refresh")
            expect(phone.locator("#signed-out")).to_be_visible()
            expect(phone.locator("#message")).to_contain_text("Your session has ended")
            phone.screenshot(path=os.path.join(SCREENSHOTS, "session-ended.png"), full_page=True)

            # The bad password message comes from the API, inserted as text.
            phone.fill("#login-form [name=username]", "dana")
            phone.fill("#login-form [name=password]", "<b>wrong</b>")
            phone.click("#login-form button")
            expect(phone.locator("#message")).to_have_text(
                "The username or password is incorrect.")
            assert phone.locator("#message b").count() == 0
        finally:
            browser.close()


def test_make_run_refuses_a_partial_admin_setting(tmp_path):
    stack = Stack(tmp_path / "run.log", ADMIN_USERNAME="boss", ADMIN_PASSWORD="boss password 12")
    try:
        with pytest.raises(RuntimeError, match="ADMIN_EMAIL is not set"):
            stack.start()
    finally:
        stack.stop()
    assert not port_open(stack.port)


def test_make_run_prints_no_token_sent_in_a_url(stack):
    body = {"username": "leaky", "email": "leaky@example.com", "password": "leaky password 1"}
    assert post(stack, "/api/v1/signup", body).status_code == 201
    token = post(stack, "/api/v1/login", {"username": "leaky",
                                          "password": "leaky password 1"}).json()["token"]
    # A confused client revokes "the token" by its value rather than its id,
    # and another puts it in a query string.
    headers = {"Authorization": f"Bearer {token}"}
    requests.delete(f"{stack.base}/api/v1/tokens/{token}", headers=headers, timeout=10)
    requests.get(f"{stack.base}/api/v1/tokens?access_token={token}", headers=headers, timeout=10)
    assert token.split(".")[2] not in stack.output()


def test_no_event_outlives_an_account_deleted_amid_logins_and_failed_logins(stack):
    """The owner deletes its account while right and wrong passwords arrive
    at once (five in all, so that each is checked before any lock):
    whatever each of them got, nothing of the account is left, its log
    included (every event write is conditional on the deletion not having
    begun)."""
    from deploy import tables

    client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{stack.dynamodb_port}",
                          region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    names = tables.stage_table_names(ROOT, "local")
    password = "racer password"
    for round in range(3):
        # A name and an address of its own: the signup race above spends
        # racer<i>@example.com on this same stack.
        name = f"deleter{round}"
        body = {"username": name, "email": f"{name}@example.org", "password": password}
        signed_up = post(stack, "/api/v1/signup", body)
        assert signed_up.status_code == 201, signed_up.text
        user_id = signed_up.json()["id"]
        token = post(stack, "/api/v1/login", {"username": name, "password": password}).json()
        token = token["token"]

        def send(session, i):
            if i == 0:
                session.headers["Authorization"] = f"Bearer {token}"
                return session.delete(stack.base + "/api/v1/users/me",
                                      json={"password": password}, timeout=30).status_code
            guess = password if i % 2 else f"wrong guess {i}"
            return session.post(stack.base + "/api/v1/login",
                                json={"username": name, "password": guess},
                                timeout=30).status_code

        statuses = burst(stack, 5, send)
        assert statuses[0] == 200, statuses
        for kind in ("events", "tokens"):
            left = client.query(TableName=names[kind], KeyConditionExpression="user_id = :u",
                                ExpressionAttributeValues={":u": {"S": user_id}})["Items"]
            assert left == [], (kind, statuses)


def amid_logins(stack, name, owner_request, loops=4, trials=6):
    """``owner_request(session, token, password)`` made while ``loops``
    clients log in as ``name`` with the right password, as fast as they
    can, ``trials`` times over (a fresh account each time); the owner's
    statuses, and the tokens the loops got before the owner's answer.

    Four loops and the owner's own check are five passwords in flight at
    most: a sixth would set the backoff's lock (at most five checks at
    once, however right), and the owner would get its 429 and Retry-After,
    as any login would (tests/test_backoff.py)."""
    results = []
    for trial in range(trials):
        user, password = f"{name}{trial}", f"{name} password {trial}"
        body = {"username": user, "email": f"{user}@example.net", "password": password}
        assert post(stack, "/api/v1/signup", body).status_code == 201
        token = post(stack, "/api/v1/login", {"username": user, "password": password}).json()
        sessions = [requests.Session() for _ in range(loops + 1)]
        for session in sessions:
            session.get(stack.base + "/", timeout=10)
        done, before = threading.Event(), []

        def loop(session):
            while not done.is_set():
                reply = session.post(stack.base + "/api/v1/login", timeout=30,
                                     json={"username": user, "password": password})
                if reply.status_code == 200 and not done.is_set():
                    before.append(reply.json()["token"])

        threads = [threading.Thread(target=loop, args=(s,)) for s in sessions[1:]]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        reply = owner_request(sessions[0], token["token"], password)
        done.set()
        for thread in threads:
            thread.join(timeout=60)
        for session in sessions:
            session.close()
        results.append((reply.status_code, token["token"], list(before)))
    return results


def alive(stack, token):
    return requests.get(stack.base + "/api/v1/users/me", timeout=10,
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_owners_password_change_wins_against_parallel_logins(stack):
    def change(session, token, password):
        return session.post(stack.base + "/api/v1/users/me/password", timeout=60,
                            headers={"Authorization": f"Bearer {token}"},
                            json={"current_password": password,
                                  "new_password": password + " changed"})

    for status, token, before in amid_logins(stack, "changer", change):
        assert status == 200
        assert alive(stack, token)
        assert not any(alive(stack, t) for t in before)


def test_the_owners_revoke_all_wins_against_parallel_logins(stack):
    def revoke_all(session, token, password):
        return session.delete(stack.base + "/api/v1/tokens", timeout=60,
                              headers={"Authorization": f"Bearer {token}"})

    for status, token, before in amid_logins(stack, "revoker", revoke_all):
        assert status == 200
        assert not alive(stack, token)


def test_the_owners_deletion_wins_against_parallel_logins(stack):
    def delete(session, token, password):
        return session.delete(stack.base + "/api/v1/users/me", timeout=60,
                              headers={"Authorization": f"Bearer {token}"},
                              json={"password": password})

    for status, token, before in amid_logins(stack, "leaver", delete):
        assert status == 200
        assert not any(alive(stack, t) for t in [token, *before])


def test_parallel_requests_log_request_ids_of_their_own(stack):
    """Each request line names its own request, as API Gateway's access log
    does: sixteen requests at once give sixteen ids."""
    marker = "ids-" + str(time.time())

    def send(session, i):
        return session.get(stack.base + "/api/v1/openapi.json", timeout=30,
                           headers={"User-Agent": marker}).status_code

    before = len(log_lines(stack))
    assert burst(stack, 16, send) == [200] * 16
    time.sleep(0.5)
    ids = [line["request_id"] for line in log_lines(stack)[before:]
           if line["event"] == "request" and line["route"] == "/api/v1/openapi.json"]
    assert len(ids) == 16 and len(set(ids)) == 16 and None not in ids


def make_reset(data_dir):
    return subprocess.run(["make", "--no-print-directory", "reset"], cwd=ROOT,
                          env={**os.environ, "LOCAL_DATA_DIR": str(data_dir)},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_restarted_make_run_keeps_users_and_sessions_and_make_reset_drops_them(tmp_path, stop):
    """The data lives in LOCAL_DATA_DIR (the stack's own, here): a user and
    its session survive a stop, clean or `kill -9` (which loses at most the
    last 2 s: the test waits for the save first); `make reset` refuses while
    make run serves on the data, and drops it once stopped."""
    data = tmp_path / "local" / "dynamodb.json"
    first = Stack(tmp_path / "first.log").start()
    try:
        token = signed_up(first, "keeper").json()["token"]
        refused = make_reset(data.parent)
        assert refused.returncode != 0 and "make reset refused" in refused.stderr
        assert f"{data} is in use by make run" in refused.stderr
        deadline = time.monotonic() + 10
        while b"keeper" not in (data.read_bytes() if data.exists() else b""):
            assert time.monotonic() < deadline, "the signup never reached " + str(data)
            time.sleep(0.2)
    finally:
        first.stop(sig=stop)
    assert "keeper" in data.read_text(), first.output()

    again = Stack(tmp_path / "again.log").start()
    try:
        assert post(again, "/api/v1/login", {"username": "keeper",
                                             "password": "keeper password 1"}).status_code == 200
        me = requests.get(again.base + "/api/v1/users/me",
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.status_code == 200 and me.json()["username"] == "keeper"
    finally:
        again.stop()

    dropped = make_reset(data.parent)
    assert dropped.returncode == 0 and dropped.stdout.startswith(f"dropped {data} (")
    assert not data.exists()


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1 2"])
def test_a_malformed_content_length_is_a_400_not_a_traceback(stack, length):
    """API Gateway answers a request whose length it cannot read with a 400;
    chalice's server dropped the connection and printed a traceback."""
    import socket

    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as s:
        s.sendall(b"POST /api/v1/login HTTP/1.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + length + b"\r\n\r\n")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    assert "Traceback" not in stack.output()
