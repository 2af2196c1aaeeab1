"""Attacks on the second factors and passkeys, from outside: ways around
the second step, guesses past the backoff, replays, races, malformed
WebAuthn answers, and what a stolen token or a mailbox can turn into."""
import logging
import threading

from fido2 import cbor
import pytest

import authenticator
from chalicelib import backoff, contract, service, totp
from chalicelib.errors import ServiceError
from conftest import PASSWORD
from test_passkeys import passkey_login, register
from test_second_factor import Totp, clock  # noqa: F401 - clock is a fixture

MFA = "/api/v1/users/me/mfa"
PASSKEYS = "/api/v1/users/me/passkeys"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def user(api, clock, mailbox):  # noqa: F811 - clock
    """alice with TOTP, her address verified, the signup's mail a minute old."""
    alice = Totp(api, clock)
    mailbox.deliver()
    service.admin.verify_email("alice")
    clock.tick(61)
    return alice


def reset_by_email(api, mailbox, password=NEW_PASSWORD):
    assert api.call("POST", "/api/v1/password/forgot", {"email": "alice@example.com"}).status == 202
    link = mailbox.link("alice@example.com", "reset")
    return api.call("POST", "/api/v1/password/reset", {"token": link, "new_password": password})


def locked_by_wrong_codes(user):
    """The password's attempt and four wrong codes: the name locked."""
    mfa_token = user.mfa_token()
    for _ in range(backoff.THRESHOLD - 1):
        assert user.second_step(mfa_token, code="000000").status == 401
    assert user.second_step(mfa_token, code="000000").status == 429
    return mfa_token


def in_threads(calls):
    """Each call in a thread of its own, released together; their answers."""
    barrier, answers = threading.Barrier(len(calls)), []

    def run(call):
        barrier.wait(timeout=20)
        answers.append(call())

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def second_step(mfa_token, **factor):
    """/login/mfa in process (a thread of its own): its status."""
    from chalicelib.service import factor_logins

    try:
        factor_logins.second_step(mfa_token, "203.0.113.7", **factor)
        return 200
    except ServiceError as exc:
        return contract.status(exc)


# --- a reset by email ---------------------------------------------------------------

def test_a_password_reset_leaves_the_second_factor_needed(user, api, mailbox):
    assert reset_by_email(api, mailbox).status == 200
    reply = api.login(password=NEW_PASSWORD)
    assert reply.status == 403 and reply.json["error"] == "mfa_required"


def test_a_password_reset_does_not_clear_the_count_that_guards_the_codes(user, api, mailbox):
    """Whoever reads the mailbox must not buy fresh guesses at the codes
    with each reset link (five an hour)."""
    locked_by_wrong_codes(user)
    assert reset_by_email(api, mailbox).status == 200
    assert api.login(password=NEW_PASSWORD).status == 429


# --- a stolen token ----------------------------------------------------------------------

def test_a_right_password_on_a_password_route_does_not_clear_the_count(user, api):
    """A stolen token and the password: a change of address (202, with the
    right password) must not reopen the guessing at the codes."""
    locked_by_wrong_codes(user)
    user.clock.tick(backoff.FIRST_WAIT)
    moved = api.call("POST", "/api/v1/users/me/email",
                     {"password": PASSWORD, "new_email": "mallory@example.net"}, token=user.token)
    assert moved.status == 202
    login, checked = api.login(), []
    while login.status == 403 and len(checked) < backoff.THRESHOLD:
        answer = user.second_step(login.json["mfa_token"], code="000000").status
        if answer != 401:
            break
        checked.append(answer)
    # Past a lock, one guess a wait, as before the change of address.
    assert len(checked) <= 1, checked


def test_a_token_older_than_ten_minutes_cannot_add_a_passkey(api, later):
    """A passkey logs in on its own and outlives every token: a token copied
    from a session that has been running a while cannot make one (the owner
    signs in again to add a passkey)."""
    stolen = api.user()
    later(601)
    reply = api.call("POST", PASSKEYS + "/options", token=stolen)
    assert (reply.status, reply.json["error"]) == (403, "reauthentication_required")


def test_a_passkey_cannot_be_added_with_an_old_token_and_fresh_options(api, later):
    token = api.user()
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    later(601)
    _, made = authenticator.create(options["options"])
    reply = api.call("POST", PASSKEYS, {"challenge_id": options["challenge_id"],
                                        "credential": made, "name": "late"}, token=token)
    assert (reply.status, reply.json["error"]) == (403, "reauthentication_required")


# --- WebAuthn answers a library lets through -----------------------------------------------

def registered_with(api, token, **credential_knobs):
    """A registration whose credential is changed by ``credential_knobs``."""
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    credential = authenticator.Credential(authenticator.unb64url(options["options"]["user"]["id"]))
    for name, value in credential_knobs.items():
        setattr(credential, name, value)
    _, made = authenticator.create(options["options"], credential=credential)
    return api.call("POST", PASSKEYS, {"challenge_id": options["challenge_id"],
                                       "credential": made, "name": "key"}, token=token)


def test_a_credential_id_over_1023_bytes_is_refused(api):
    """WebAuthn Level 3, 7.1 step 25: a credential id longer than 1023 bytes
    fails the registration."""
    token = api.user()
    reply = registered_with(api, token, id=bytes(range(256)) * 4)
    assert reply.status == 400 and reply.json["error"] == "invalid_credential"


def padded_key(credential, size=40_000):
    key = cbor.decode(authenticator.Credential.cose_key(credential))
    key[-4] = bytes(size)  # an extra COSE parameter: the library keeps it
    return lambda: cbor.encode(key)


def test_a_public_key_padded_to_tens_of_kilobytes_is_refused(api):
    token = api.user()
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    credential = authenticator.Credential(authenticator.unb64url(options["options"]["user"]["id"]))
    credential.cose_key = padded_key(credential)
    _, made = authenticator.create(options["options"], credential=credential)
    reply = api.call("POST", PASSKEYS, {"challenge_id": options["challenge_id"],
                                        "credential": made, "name": "key"}, token=token)
    assert reply.status == 400 and reply.json["error"] == "invalid_credential"


def test_passkeys_that_fill_the_factors_item_never_make_a_500(api, dynamodb, table_names):
    """The factors item holds every passkey: past DynamoDB's 400 KB, a
    write of it is a ValidationException, which must not be a 500. About
    110 passkeys as large as registration allows fill it: they are written
    here directly, as that many registrations would (a token is all they
    need), until DynamoDB takes no more."""
    from botocore.exceptions import ClientError

    from chalicelib.passkeys import MAX_CREDENTIAL_ID_BYTES, MAX_PUBLIC_KEY_BYTES

    token = api.user()
    register(api, token)
    user_id = api.call("GET", "/api/v1/users/me", token=token).json["id"]
    for n in range(200):
        passkey = {"credential_id": {"S": authenticator.b64url(bytes(MAX_CREDENTIAL_ID_BYTES))},
                   "public_key": {"B": bytes(MAX_PUBLIC_KEY_BYTES)}, "sign_count": {"N": "0"},
                   "name": {"S": "k" * 200}, "created_at": {"N": "1"}}
        try:
            dynamodb.update_item(TableName=table_names["users"],
                                 Key={"pk": {"S": "factors#" + user_id}},
                                 UpdateExpression="SET #p = :p",
                                 ExpressionAttributeNames={"#p": f"passkey_{n:04}"},
                                 ExpressionAttributeValues={":p": {"M": passkey}})
        except ClientError:
            break
    statuses = [register(api, token)[1].status for _ in range(20)]
    assert 500 not in statuses, statuses


def test_a_signature_counter_that_stays_at_a_non_zero_value_is_refused(api):
    token = api.user()
    credential, _ = register(api, token)
    assert passkey_login(api, credential, counter=7).status == 200
    assert passkey_login(api, credential, counter=7).status == 401


def test_a_second_steps_challenge_is_refused_by_a_passwordless_login(api):
    token = api.user()
    credential, _ = register(api, token)
    mfa_token = api.login().json["mfa_token"]
    options = api.call("POST", "/api/v1/login/passkey/options", {"mfa_token": mfa_token}).json
    assertion = authenticator.get(credential, options["options"])
    reply = api.call("POST", "/api/v1/login/passkey",
                     {"challenge_id": options["challenge_id"], "credential": assertion})
    assert reply.status == 401


def test_a_registration_challenge_is_refused_by_a_login(api):
    token = api.user()
    credential, _ = register(api, token)
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    assertion = authenticator.get(credential, options["options"])
    reply = api.call("POST", "/api/v1/login/passkey",
                     {"challenge_id": options["challenge_id"], "credential": assertion})
    assert reply.status == 401


@pytest.mark.parametrize("mangle", [
    lambda a: {**a, "response": {**a["response"], "authenticatorData": "%%%"}},
    lambda a: {**a, "response": {**a["response"], "clientDataJSON": authenticator.b64url(b"{")}},
    lambda a: {**a, "response": {**a["response"], "userHandle": authenticator.b64url(b"\xff\xfe")}},
    lambda a: {**a, "response": {**a["response"], "signature": 5}},
    lambda a: {**a, "response": "not an object"},
    lambda a: {**a, "rawId": ["a"], "id": None},
    lambda a: {**a, "type": "password"},
], ids=["base64", "json", "handle not text", "signature a number", "response a string",
        "ids not strings", "type"])
def test_a_mangled_assertion_is_a_401(api, mangle):
    token = api.user()
    credential, _ = register(api, token)
    options = api.call("POST", "/api/v1/login/passkey/options", {}).json
    assertion = mangle(authenticator.get(credential, options["options"]))
    reply = api.call("POST", "/api/v1/login/passkey",
                     {"challenge_id": options["challenge_id"], "credential": assertion})
    assert reply.status == 401 and reply.json["error"] == "invalid_credentials"


def test_a_mangled_attestation_is_a_400(api):
    token = api.user()
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    _, made = authenticator.create(options["options"])
    made["response"]["attestationObject"] = authenticator.b64url(b"\xa1\x63fmt\xff")
    reply = api.call("POST", PASSKEYS, {"challenge_id": options["challenge_id"],
                                        "credential": made, "name": "key"}, token=token)
    assert reply.status == 400 and reply.json["error"] == "invalid_credential"


# --- guesses and races -------------------------------------------------------------------

def test_wrong_codes_raced_at_one_mfa_token_are_checked_at_most_to_the_lock(user,
                                                                             one_call_at_a_time):
    mfa_token = user.mfa_token()
    statuses = in_threads([lambda: second_step(mfa_token, code="000000") for _ in range(12)])
    assert statuses.count(401) <= backoff.THRESHOLD - 1, statuses
    assert set(statuses) <= {401, 429, 400}


def test_wrong_codes_raced_over_several_mfa_tokens_share_one_count(user, one_call_at_a_time):
    tokens = [user.mfa_token() for _ in range(3)]
    statuses = in_threads([lambda t=t: second_step(t, code="000000")
                           for t in tokens for _ in range(4)])
    # Three password attempts counted already: two wrong codes reach the lock.
    assert statuses.count(401) <= backoff.THRESHOLD - 3, statuses


def test_one_recovery_code_raced_opens_one_session(user, one_call_at_a_time):
    code, tokens = user.recovery_codes[0], [user.mfa_token() for _ in range(4)]
    statuses = in_threads([lambda t=t: second_step(t, recovery_code=code) for t in tokens])
    assert statuses.count(200) == 1 and set(statuses) <= {200, 401, 429}, statuses


def test_another_users_recovery_code_is_refused(user, api):
    bob = Totp(api, user.clock, "bob")
    reply = user.second_step(user.mfa_token(), recovery_code=bob.recovery_codes[0])
    assert reply.status == 401


def test_an_operators_reset_between_the_check_and_the_write_opens_no_session(user, monkeypatch):
    """The second step found the code good; reset-mfa lands before its
    transaction: the code's condition on the factors refuses it."""
    from chalicelib.service import factors

    code, mfa_token, matching = user.code(), user.mfa_token(), totp.matching_step

    def then_reset(*args, **kwargs):
        step = matching(*args, **kwargs)
        factors.reset("alice")
        return step

    monkeypatch.setattr(totp, "matching_step", then_reset)
    assert second_step(mfa_token, code=code) == 401


def test_an_mfa_token_is_refused_after_the_totp_it_was_issued_for_is_disabled(user, api):
    mfa_token = user.mfa_token()
    off = api.call("DELETE", MFA + "/totp", {"password": PASSWORD, "code": user.code()},
                   token=user.token)
    assert off.status == 200
    assert user.second_step(mfa_token, recovery_code=user.recovery_codes[0]).status == 401
    assert user.second_step(mfa_token, code=user.code()).status == 401


# --- what leaks -------------------------------------------------------------------------------

def test_no_log_line_holds_an_mfa_token_or_a_public_key(api, clock, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="login-service")
    token = api.user()
    credential, _ = register(api, token)
    mfa_token = api.login().json["mfa_token"]
    api.call("POST", "/api/v1/login/mfa", {"mfa_token": mfa_token, "code": "000000"})
    lines = "\n".join(r.getMessage() for r in caplog.records)
    key = credential.cose_key()
    assert mfa_token not in lines
    assert authenticator.b64url(key) not in lines and key.hex() not in lines


def test_a_wrong_password_for_a_user_with_a_factor_says_nothing_of_it(user, api):
    reply = api.login(password="wrong password")
    assert reply.json == api.login("nobody", password="wrong password").json


@pytest.mark.xfail(strict=True, reason="a known limit (docs/security.md): only a password-only "
                   "login rehashes a hash of another cost")
def test_a_login_with_a_second_factor_rehashes_a_password_of_another_cost(api, clock,  # noqa: F811
                                                                           monkeypatch):
    """A password login rehashes a hash of another cost, so that a wrong
    password then costs what an unknown name costs; a user with a second
    factor must not keep the old cost (and a timing apart) for good."""
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    alice = Totp(api, clock)
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    assert alice.second_step(alice.mfa_token(), code=alice.code()).status == 200
    assert service.admin.find_user("alice").password_hash.split("$")[2] == "04"
