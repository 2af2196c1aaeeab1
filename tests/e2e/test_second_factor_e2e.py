"""End to end: second factors and passkeys on the real `make run` stack,
over HTTP, with codes from pyotp (as a phone computes them from the secret
it was shown) and the software authenticator of tests/authenticator.py
speaking for the stack's own origin (http://localhost:PORT, RP id
localhost, PUBLIC_URL's default)."""
import threading
import time

import pyotp
import pytest
import requests

import authenticator
from stack import module_stack

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


stack = module_stack("factors")


def call(stack, method, path, body=None, token=None, session=requests):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return session.request(method, stack.base + "/api/v1" + path, json=body, headers=headers,
                           timeout=30)


def origin(stack):
    return f"http://localhost:{stack.port}"


def login(stack, username):
    return call(stack, "POST", "/login", {"username": username, "password": PASSWORD})


def signed_up(stack, username):
    """A new user's token."""
    assert call(stack, "POST", "/signup", {"username": username, "password": PASSWORD,
                                           "email": f"{username}@example.com"}).status_code == 201
    reply = login(stack, username)
    assert reply.status_code == 200, reply.text
    return reply.json()["token"]


def next_code(secret):
    """The code of the step after the current one: the confirmation used
    the current step, and a code is accepted once (a step either side is)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


class TotpUser:
    """A user who set TOTP up over HTTP: token, secret, recovery codes."""

    def __init__(self, stack, username):
        self.stack, self.username = stack, username
        self.token = signed_up(stack, username)
        setup = call(stack, "POST", "/users/me/mfa/totp", {"password": PASSWORD},
                     token=self.token)
        assert setup.status_code == 200, setup.text
        self.secret = setup.json()["secret"]
        confirmed = call(stack, "POST", "/users/me/mfa/totp/confirm",
                         {"code": pyotp.TOTP(self.secret).now()}, token=self.token)
        assert confirmed.status_code == 200, confirmed.text
        self.recovery_codes = confirmed.json()["recovery_codes"]

    def mfa_token(self):
        reply = login(self.stack, self.username)
        assert reply.status_code == 403 and reply.json()["error"] == "mfa_required", reply.text
        return reply.json()["mfa_token"]

    def second_step(self, mfa_token, **factor):
        return call(self.stack, "POST", "/login/mfa", {"mfa_token": mfa_token, **factor})


def login_methods(stack, token):
    events = call(stack, "GET", "/users/me/events", token=token).json()["events"]
    return [e["method"] for e in events if e["type"] == "login"]


def register_passkey(stack, token):
    """A passkey registered through the API: the authenticator's credential."""
    options = call(stack, "POST", "/users/me/passkeys/options", token=token)
    assert options.status_code == 200, options.text
    credential, made = authenticator.create(options.json()["options"], origin=origin(stack))
    reply = call(stack, "POST", "/users/me/passkeys", {
        "challenge_id": options.json()["challenge_id"], "credential": made, "name": "phone"},
        token=token)
    assert reply.status_code == 201, reply.text
    return credential


def test_totp_set_up_over_http_makes_a_password_login_need_a_code(stack):
    user = TotpUser(stack, "tina")
    reply = user.second_step(user.mfa_token(), code=next_code(user.secret))
    assert reply.status_code == 200, reply.text
    assert login_methods(stack, reply.json()["token"])[0] == "password+totp"


def test_a_code_replayed_from_eight_threads_opens_one_session(stack):
    """Two password logins' mfa_tokens, four threads on each, the same code,
    each thread on a keep-alive connection opened before the burst (chalice
    local's backlog is 5). The wrong tries that the lock cuts short are
    429s; none is a 5xx, and one session opens."""
    user = TotpUser(stack, "rex")
    code, tokens = next_code(user.secret), [user.mfa_token(), user.mfa_token()]
    sessions = [requests.Session() for _ in range(8)]
    for session in sessions:
        session.get(stack.base + "/", timeout=10)
    start, answers = threading.Barrier(8), [None] * 8

    def one(i):
        start.wait(timeout=30)
        answers[i] = call(stack, "POST", "/login/mfa", {"mfa_token": tokens[i % 2], "code": code},
                          session=sessions[i])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 1 and set(statuses) <= {200, 400, 401, 429}, statuses
    listed = call(stack, "GET", "/tokens", token=user.token).json()["tokens"]
    assert len(listed) == 2  # the session of the setup and the one the code opened


def test_wrong_codes_lock_the_name_as_wrong_passwords_do(stack):
    """The password's attempt and four wrong codes are five failed logins:
    then the right code, and the password itself, are 429s."""
    user = TotpUser(stack, "lars")
    mfa_token = user.mfa_token()
    for _ in range(4):
        wrong = user.second_step(mfa_token, code="000000")
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_code"
    right = user.second_step(mfa_token, code=next_code(user.secret))
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
    assert login(stack, "lars").status_code == 429


def test_a_passkey_registered_over_http_logs_in_without_a_password(stack):
    token = signed_up(stack, "paula")
    credential = register_passkey(stack, token)
    options = call(stack, "POST", "/login/passkey/options", {})
    assertion = authenticator.get(credential, options.json()["options"], origin=origin(stack))
    reply = call(stack, "POST", "/login/passkey", {
        "challenge_id": options.json()["challenge_id"], "credential": assertion})
    assert reply.status_code == 200, reply.text
    me = call(stack, "GET", "/users/me", token=reply.json()["token"])
    assert me.json()["username"] == "paula"


def test_a_passkey_is_the_second_factor_of_a_password_login(stack):
    token = signed_up(stack, "pete")
    credential = register_passkey(stack, token)
    required = login(stack, "pete")
    assert required.status_code == 403 and "passkey" in required.json()["methods"]
    mfa_token = required.json()["mfa_token"]
    options = call(stack, "POST", "/login/passkey/options", {"mfa_token": mfa_token})
    assertion = authenticator.get(credential, options.json()["options"], origin=origin(stack))
    reply = call(stack, "POST", "/login/mfa", {"mfa_token": mfa_token, "credential": assertion})
    assert reply.status_code == 200, reply.text
    assert login_methods(stack, reply.json()["token"])[0] == "password+passkey"


def test_a_recovery_code_opens_one_session_and_is_then_dead(stack):
    user = TotpUser(stack, "rosa")
    code = user.recovery_codes[0]
    assert user.second_step(user.mfa_token(), recovery_code=code).status_code == 200
    again = user.second_step(user.mfa_token(), recovery_code=code)
    assert again.status_code == 401 and again.json()["error"] == "invalid_code"
