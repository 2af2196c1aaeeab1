"""Attacks on email and recovery against the real `make run` stack, with
requests raced from real threads on connections opened beforehand."""
import json
import re
import threading

import pytest
import requests

from stack import module_stack
from test_email_e2e import PASSWORD, a_minute_passes, login, reset_link, verified_user

pytestmark = pytest.mark.e2e

NEW = "a brand new passphrase"


stack = module_stack("mailattacks")


def post(stack, path, body=None, token=None, session=requests):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return session.post(stack.base + "/api/v1" + path, json=body, headers=headers, timeout=20)


def race(stack, *calls):
    """Each ``call(session)`` from its own thread, on a connection opened
    beforehand, released at once; their answers."""
    start, answers = threading.Barrier(len(calls)), [None] * len(calls)
    sessions = [requests.Session() for _ in calls]
    for s in sessions:
        s.get(stack.base + "/api/v1/", timeout=10)  # the connection, kept alive

    def one(i):
        start.wait()
        answers[i] = calls[i](sessions[i])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def me(stack, token):
    return requests.get(stack.base + "/api/v1/users/me", timeout=10,
                        headers={"Authorization": f"Bearer {token}"})


def test_two_accounts_racing_for_one_new_address_leave_it_to_one(stack):
    taken = "shared@example.com"
    tokens, links = [], []
    for name in ("racer1", "racer2"):
        verified_user(stack, name)
        token = login(stack, name).json()["token"]
        seen = len(stack.mail(taken))
        assert post(stack, "/users/me/email", {"password": PASSWORD, "new_email": taken},
                    token).status_code == 202
        links.append(stack.link(taken, "verify", seen=seen))
        tokens.append(token)
        a_minute_passes(stack, taken)
    answers = race(stack, *(lambda s, link=link: post(stack, "/email/verify", {"token": link},
                                                      session=s) for link in links))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.json() for a in answers]
    emails = sorted(me(stack, t).json()["email"] for t in tokens)
    assert taken in emails and emails.count(taken) == 1


def test_a_reset_racing_a_password_change_leaves_one_password(stack):
    email = verified_user(stack, "racepw")
    token = login(stack, "racepw").json()["token"]
    link = reset_link(stack, email)
    answers = race(
        stack,
        lambda s: post(stack, "/password/reset", {"token": link, "new_password": NEW}, session=s),
        lambda s: post(stack, "/users/me/password", {"current_password": PASSWORD,
                                                     "new_password": "the owner's new one"},
                       token, session=s))
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    works = [p for p in (PASSWORD, NEW, "the owner's new one")
             if login(stack, "racepw", p).status_code == 200]
    assert len(works) == 1 and works != [PASSWORD]


def test_a_reset_racing_the_accounts_deletion_leaves_no_half_account(stack):
    email = verified_user(stack, "racedel")
    token = login(stack, "racedel").json()["token"]
    link = reset_link(stack, email)
    answers = race(
        stack,
        lambda s: post(stack, "/password/reset", {"token": link, "new_password": NEW}, session=s),
        lambda s: s.delete(stack.base + "/api/v1/users/me", json={"password": PASSWORD},
                           headers={"Authorization": f"Bearer {token}"}, timeout=20))
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    reset, deleted = answers
    if deleted.status_code == 200:
        assert reset.status_code == 400
        assert login(stack, "racedel", NEW).status_code == 401
        assert login(stack, "racedel", PASSWORD).status_code == 401
    else:
        assert reset.status_code == 200
        assert login(stack, "racedel", NEW).status_code == 200


def test_forgot_gives_the_same_headers_for_an_account_and_for_nobody(stack):
    email = verified_user(stack, "heads")
    known = post(stack, "/password/forgot", {"email": email})
    unknown = post(stack, "/password/forgot", {"email": "nobody-at-all@example.com"})
    drop = {"Date", "X-Request-Id", "x-amzn-RequestId", "X-Amzn-Trace-Id"}
    assert ({k: v for k, v in known.headers.items() if k not in drop}
            == {k: v for k, v in unknown.headers.items() if k not in drop})


def test_only_the_mail_lines_hold_an_address_or_a_link(stack):
    email = verified_user(stack, "quiet")
    post(stack, "/password/reset", {"token": reset_link(stack, email), "new_password": NEW})
    threading.Event().wait(1)
    other = [line for line in stack.output().splitlines()
             if not line.startswith('{"event":"email",')]
    leaks = [line for line in other
             if "@example.com" in line or re.search(r"#(reset|verify)=", line)]
    assert leaks == []
    assert all(json.loads(line)["to"] for line in stack.output().splitlines()
               if line.startswith('{"event":"email",'))


def test_logins_racing_a_reset_leave_no_session_of_the_old_password(stack):
    email = verified_user(stack, "raceli")
    link = reset_link(stack, email)
    answers = race(
        stack,
        lambda s: post(stack, "/password/reset", {"token": link, "new_password": NEW}, session=s),
        *(lambda s: post(stack, "/login", {"username": "raceli", "password": PASSWORD},
                         session=s) for _ in range(4)))
    assert answers[0].status_code == 200, answers[0].text
    opened = [a.json()["token"] for a in answers[1:] if a.status_code == 200]
    assert all(me(stack, token).status_code == 403 for token in opened)
    assert login(stack, "raceli", PASSWORD).status_code == 401
