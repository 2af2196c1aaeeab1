"""End to end: mail on the real `make run` stack, the links read from its
output as a developer reads them, and requests raced with real threads."""
import threading

import boto3
import pytest
import requests

from stack import module_stack

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
NEW = "a brand new passphrase"


stack = module_stack("mail")


def post(stack, path, body=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(stack.base + "/api/v1" + path, json=body, headers=headers, timeout=10)


def login(stack, username, password=PASSWORD):
    return post(stack, "/login", {"username": username, "password": password})


def a_minute_passes(stack, email):
    """Forget what went to ``email`` lately, as time passing would (the
    per-address limit holds a second link back for a minute)."""
    boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{stack.dynamodb_port}",
                 region_name="us-east-1", aws_access_key_id="local",
                 aws_secret_access_key="local").delete_item(
        TableName="login-service-local-users", Key={"pk": {"S": "mailrate#" + email.lower()}})


def verified_user(stack, name):
    email = f"{name}@example.com"
    assert post(stack, "/signup", {"username": name, "email": email,
                                   "password": PASSWORD}).status_code == 201
    reply = post(stack, "/email/verify", {"token": stack.link(email, "verify")})
    assert reply.json()["email_verified"] is True
    a_minute_passes(stack, email)
    return email


def reset_link(stack, email):
    seen = len(stack.mail(email))
    assert post(stack, "/password/forgot", {"email": email}).json() == {"sent": True}
    return stack.link(email, "reset", seen=seen)


def test_the_link_make_run_prints_at_signup_verifies_the_address(stack):
    verified_user(stack, "vera")


def test_make_run_prints_each_message_as_the_contracts_json_line(stack):
    verified_user(stack, "lines")
    message = stack.mail("lines@example.com")[0]
    assert set(message) == {"event", "to", "subject", "text"}
    assert f"http://localhost:{stack.port}/#verify=" in message["text"]


def test_a_forgotten_password_is_reset_through_the_printed_link(stack):
    email = verified_user(stack, "rita")
    tokens = [login(stack, "rita").json()["token"] for _ in range(2)]
    reply = post(stack, "/password/reset", {"token": reset_link(stack, email),
                                            "new_password": NEW})
    assert reply.json() == {"revoked": 2}
    for token in tokens:
        me = requests.get(stack.base + "/api/v1/users/me", timeout=10,
                          headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 403
    assert login(stack, "rita", NEW).status_code == 200


def test_the_reset_is_noticed_at_the_address(stack):
    email = verified_user(stack, "nora")
    post(stack, "/password/reset", {"token": reset_link(stack, email), "new_password": NEW})
    for _ in range(50):
        if "password was reset" in stack.mail(email)[-1]["subject"]:
            break
        threading.Event().wait(0.1)
    assert "password was reset" in stack.mail(email)[-1]["subject"]


def test_forgot_answers_the_same_for_an_account_and_for_nobody(stack):
    email = verified_user(stack, "fred")
    known = post(stack, "/password/forgot", {"email": email})
    unknown = post(stack, "/password/forgot", {"email": "nobody@example.com"})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json()) == (
        202, {"sent": True})


def race(count, call):
    """``call()`` from ``count`` threads released at once; their answers."""
    start, answers = threading.Barrier(count), [None] * count

    def one(i):
        start.wait()
        answers[i] = call()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_a_reset_link_raced_from_eight_threads_works_once(stack):
    email = verified_user(stack, "race")
    link = reset_link(stack, email)
    answers = race(8, lambda: post(stack, "/password/reset",
                                   {"token": link, "new_password": NEW}))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [400] * 7, [a.json() for a in answers]


def test_forgot_raced_from_eight_threads_sends_one_link(stack):
    email = verified_user(stack, "spray")
    seen = len(stack.mail(email))
    answers = race(8, lambda: post(stack, "/password/forgot", {"email": email}))
    assert {a.status_code for a in answers} == {202}
    stack.link(email, "reset", seen=seen)
    threading.Event().wait(1.5)  # every item handed to the mailer (it polls every 0.25 s)
    assert len(stack.mail(email)) == seen + 1
