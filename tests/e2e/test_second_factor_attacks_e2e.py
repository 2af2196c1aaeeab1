"""Attacks on the second factors against the real `make run` stack: codes
and recovery codes raced from real threads on connections opened
beforehand, a software authenticator at the stack's origin, a reset
through the printed link."""
import time

from fido2 import cbor
import pyotp
import pytest
import requests

import authenticator
from stack import module_stack
from test_email_attacks_e2e import post, race
from test_email_e2e import PASSWORD, reset_link, verified_user

pytestmark = pytest.mark.e2e

NEW = "a brand new passphrase"


stack = module_stack("mfaattacks")


def login(stack, name, password=PASSWORD):
    return post(stack, "/login", {"username": name, "password": password})


def with_totp(stack, name):
    """``name``, its address verified, TOTP on: its token, secret and
    recovery codes."""
    verified_user(stack, name)
    token = login(stack, name).json()["token"]
    secret = post(stack, "/users/me/mfa/totp", {"password": PASSWORD}, token).json()["secret"]
    confirmed = post(stack, "/users/me/mfa/totp/confirm", {"code": pyotp.TOTP(secret).now()}, token)
    assert confirmed.status_code == 200, confirmed.text
    return token, secret, confirmed.json()["recovery_codes"]


def second_step(stack, mfa_token, session=requests, **factor):
    return post(stack, "/login/mfa", {"mfa_token": mfa_token, **factor}, session=session)


def register(stack, token, credential=None):
    options = post(stack, "/users/me/passkeys/options", token=token).json()
    credential = credential or authenticator.Credential(
        authenticator.unb64url(options["options"]["user"]["id"]))
    _, made = authenticator.create(options["options"], origin=f"http://localhost:{stack.port}",
                                   credential=credential)
    reply = post(stack, "/users/me/passkeys", {"challenge_id": options["challenge_id"],
                                               "credential": made, "name": "key"}, token)
    return credential, reply


def passkey_login(stack, credential):
    options = post(stack, "/login/passkey/options", {}).json()
    assertion = authenticator.get(credential, options["options"],
                                  origin=f"http://localhost:{stack.port}")
    return post(stack, "/login/passkey", {"challenge_id": options["challenge_id"],
                                          "credential": assertion})


def test_wrong_codes_raced_at_one_mfa_token_stop_at_the_lock(stack):
    with_totp(stack, "guesser")
    mfa_token = login(stack, "guesser").json()["mfa_token"]
    answers = race(stack, *[lambda s: second_step(stack, mfa_token, s, code="000000")] * 12)
    statuses = [a.status_code for a in answers]
    # The password's attempt counted one: four wrong codes reach the lock.
    assert statuses.count(401) <= 4 and set(statuses) <= {401, 429}, statuses


def test_one_recovery_code_raced_opens_one_session(stack):
    _, _, codes = with_totp(stack, "racer")
    tokens = [login(stack, "racer").json()["mfa_token"] for _ in range(3)]
    answers = race(stack, *[lambda s, t=t: second_step(stack, t, s, recovery_code=codes[0])
                            for t in tokens])
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 1 and set(statuses) <= {200, 401, 429}, statuses


def test_a_reset_leaves_the_second_factor_needed(stack):
    with_totp(stack, "resetter")
    assert post(stack, "/password/reset", {"token": reset_link(stack, "resetter@example.com"),
                                           "new_password": NEW}).status_code == 200
    reply = login(stack, "resetter", NEW)
    assert reply.status_code == 403 and reply.json()["error"] == "mfa_required"


def test_a_reset_does_not_clear_the_count_that_guards_the_codes(stack):
    with_totp(stack, "mailbox")
    mfa_token = login(stack, "mailbox").json()["mfa_token"]
    for _ in range(4):
        assert second_step(stack, mfa_token, code="000000").status_code == 401
    assert post(stack, "/password/reset", {"token": reset_link(stack, "mailbox@example.com"),
                                           "new_password": NEW}).status_code == 200
    assert login(stack, "mailbox", NEW).status_code == 429


def test_a_padded_public_key_is_a_400(stack):
    verified_user(stack, "padder")
    token = login(stack, "padder").json()["token"]
    options = post(stack, "/users/me/passkeys/options", token=token).json()
    credential = authenticator.Credential(authenticator.unb64url(options["options"]["user"]["id"]))
    key = cbor.decode(credential.cose_key())
    key[-4] = bytes(40_000)
    credential.cose_key = lambda: cbor.encode(key)
    _, reply = register(stack, token, credential)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_credential"


def test_a_passkey_of_another_rp_or_origin_is_refused(stack):
    verified_user(stack, "elsewhere")
    token = login(stack, "elsewhere").json()["token"]
    credential, added = register(stack, token)
    assert added.status_code == 201
    options = post(stack, "/login/passkey/options", {}).json()
    for knobs in ({"origin": "http://127.0.0.1:%d" % stack.port}, {"rp_id": "evil.example"}):
        assertion = authenticator.get(credential, options["options"],
                                      **{"origin": f"http://localhost:{stack.port}", **knobs})
        reply = post(stack, "/login/passkey", {"challenge_id": options["challenge_id"],
                                               "credential": assertion})
        assert reply.status_code == 401
        options = post(stack, "/login/passkey/options", {}).json()


def test_no_line_of_make_runs_output_holds_a_secret_a_code_or_an_mfa_token(stack):
    token, secret, codes = with_totp(stack, "quiet")
    mfa_token = login(stack, "quiet").json()["mfa_token"]
    second_step(stack, mfa_token, recovery_code=codes[1])
    time.sleep(0.5)
    output = stack.output()
    assert secret not in output and mfa_token not in output
    assert not any(c in output or c.replace("-", "") in output for c in codes)
