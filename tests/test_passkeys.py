"""Passkeys: registration, a passwordless login, the second step of a
password login, and every way WebAuthn must refuse, with a software
authenticator (tests/authenticator.py) signing real ES256 assertions."""
import pytest

import authenticator
from authenticator import UP
from chalicelib.terms import CHALLENGE_SECONDS, FACTOR_EVENT_TYPES
from conftest import PASSWORD

PASSKEYS = "/api/v1/users/me/passkeys"


@pytest.fixture
def clock(monkeypatch):
    import time

    class Clock:
        now = float(int(time.time()))

        def tick(self, seconds):
            self.now += seconds

    c = Clock()
    monkeypatch.setattr("chalicelib.clock.now", lambda: c.now)
    return c


def register(api, token, name="phone", **knobs):
    """A passkey made for a fresh challenge of the token's user: the
    authenticator's credential and the service's answer."""
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    credential, made = authenticator.create(options["options"], **knobs)
    reply = api.call("POST", PASSKEYS, {"challenge_id": options["challenge_id"],
                                        "credential": made, "name": name}, token=token)
    return credential, reply


@pytest.fixture
def alice(api):
    """Alice's token and her registered passkey."""
    token = api.user("alice")
    credential, reply = register(api, token)
    assert reply.status == 201, reply.json
    return token, credential


def passkey_login(api, credential, **knobs):
    options = api.call("POST", "/api/v1/login/passkey/options", {}).json
    assertion = authenticator.get(credential, options["options"], **knobs)
    return api.call("POST", "/api/v1/login/passkey",
                    {"challenge_id": options["challenge_id"], "credential": assertion})


def mfa_with(api, credential, username="alice", **knobs):
    mfa_token = api.login(username).json["mfa_token"]
    options = api.call("POST", "/api/v1/login/passkey/options", {"mfa_token": mfa_token}).json
    assertion = authenticator.get(credential, options["options"], **knobs)
    return api.call("POST", "/api/v1/login/mfa", {"mfa_token": mfa_token,
                                                  "credential": assertion})


def events(api, token):
    return api.call("GET", "/api/v1/users/me/events", token=token).json["events"]


# --- registration -------------------------------------------------------------

def test_registration_answers_the_passkey_and_lists_it(api, alice):
    token, _ = alice
    [listed] = api.call("GET", "/api/v1/users/me/mfa", token=token).json["passkeys"]
    assert set(listed) == {"id", "name", "created_at", "last_used_at"}
    assert listed["name"] == "phone" and listed["last_used_at"] is None


@pytest.mark.parametrize("fmt", ["none", "packed"])
def test_none_and_packed_self_attestation_are_accepted(api, fmt):
    token = api.user()
    _, reply = register(api, token, fmt=fmt)
    assert reply.status == 201


def test_the_options_ask_for_a_discoverable_credential_and_user_verification(api):
    token = api.user()
    options = api.call("POST", PASSKEYS + "/options", token=token).json["options"]
    selection = options["authenticatorSelection"]
    assert selection["residentKey"] == "required" and selection["userVerification"] == "required"
    assert options["rp"]["id"] == "localhost"


def test_the_options_exclude_the_users_passkeys(api, alice):
    token, credential = alice
    options = api.call("POST", PASSKEYS + "/options", token=token).json["options"]
    assert [c["id"] for c in options["excludeCredentials"]] == [authenticator.b64url(credential.id)]


def test_the_rp_id_and_origin_follow_public_url(api, monkeypatch):
    monkeypatch.setenv("PUBLIC_URL", "https://login.example.com/")
    monkeypatch.setenv("WEBAUTHN_RP_ID", "example.com")
    token = api.user()
    options = api.call("POST", PASSKEYS + "/options", token=token).json["options"]
    assert options["rp"]["id"] == "example.com"
    _, refused = register(api, token)  # the authenticator's origin is http://localhost:8000
    assert refused.status == 400
    _, reply = register(api, token, origin="https://login.example.com")
    assert reply.status == 201


@pytest.mark.parametrize("knobs", [{"origin": "http://localhost:8001"},
                                   {"origin": "https://evil.example"},
                                   {"rp_id": "evil.example"},
                                   {"flags": UP | authenticator.AT}],
                         ids=["another port", "another origin", "another rp id", "no uv"])
def test_a_registration_from_elsewhere_or_unverified_is_refused(api, knobs):
    token = api.user()
    _, reply = register(api, token, **knobs)
    assert reply.status == 400 and reply.json["error"] == "invalid_credential"
    assert api.call("GET", "/api/v1/users/me/mfa", token=token).json["passkeys"] == []


def test_a_registration_challenge_works_once(api):
    token = api.user()
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    _, made = authenticator.create(options["options"])
    body = {"challenge_id": options["challenge_id"], "credential": made, "name": "phone"}
    assert api.call("POST", PASSKEYS, body, token=token).status == 201
    assert api.call("POST", PASSKEYS, body, token=token).status == 400


def test_a_registration_challenge_expires(api, clock):
    token = api.user()
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    _, made = authenticator.create(options["options"])
    clock.tick(CHALLENGE_SECONDS)
    reply = api.call("POST", PASSKEYS, {"challenge_id": options["challenge_id"],
                                        "credential": made, "name": "phone"}, token=token)
    assert reply.status == 400


def test_another_users_registration_challenge_is_refused(api):
    alice, bob = api.user("alice"), api.user("bob")
    options = api.call("POST", PASSKEYS + "/options", token=alice).json
    _, made = authenticator.create(options["options"])
    reply = api.call("POST", PASSKEYS, {"challenge_id": options["challenge_id"],
                                        "credential": made, "name": "phone"}, token=bob)
    assert reply.status == 400


@pytest.mark.parametrize("credential", [{}, {"id": "x"}, {"response": "not an object"}])
def test_a_malformed_credential_is_400_never_a_500(api, credential):
    token = api.user()
    options = api.call("POST", PASSKEYS + "/options", token=token).json
    reply = api.call("POST", PASSKEYS, {"challenge_id": options["challenge_id"],
                                        "credential": credential, "name": "phone"}, token=token)
    assert reply.status == 400


# --- a passkey login --------------------------------------------------------------

def test_a_passkey_logs_in_with_no_password(api, alice):
    token, credential = alice
    reply = passkey_login(api, credential)
    assert reply.status == 200 and reply.json["token_type"] == "Bearer"
    assert api.call("GET", "/api/v1/users/me", token=reply.json["token"]).json["username"] == "alice"
    login = events(api, token)[0]
    assert login["type"] == "login" and login["method"] == "passkey"
    [listed] = api.call("GET", "/api/v1/users/me/mfa", token=token).json["passkeys"]
    assert listed["last_used_at"] is not None


def test_the_login_options_allow_any_discoverable_credential(api):
    options = api.call("POST", "/api/v1/login/passkey/options", {}).json["options"]
    assert options.get("allowCredentials", []) == [] and options["userVerification"] == "required"


@pytest.mark.parametrize("knobs", [{"origin": "https://evil.example"}, {"rp_id": "evil.example"},
                                   {"flags": UP}], ids=["wrong origin", "wrong rp id", "no uv"])
def test_an_assertion_from_elsewhere_or_unverified_is_refused(api, alice, knobs):
    _, credential = alice
    reply = passkey_login(api, credential, **knobs)
    assert reply.status == 401 and reply.json["error"] == "invalid_credentials"


def test_a_replayed_assertion_is_refused(api, alice):
    _, credential = alice
    options = api.call("POST", "/api/v1/login/passkey/options", {}).json
    body = {"challenge_id": options["challenge_id"],
            "credential": authenticator.get(credential, options["options"])}
    assert api.call("POST", "/api/v1/login/passkey", body).status == 200
    assert api.call("POST", "/api/v1/login/passkey", body).status == 401
    fresh = api.call("POST", "/api/v1/login/passkey/options", {}).json["challenge_id"]
    assert api.call("POST", "/api/v1/login/passkey", {**body, "challenge_id": fresh}).status == 401


def test_a_login_challenge_expires(api, alice, clock):
    _, credential = alice
    options = api.call("POST", "/api/v1/login/passkey/options", {}).json
    clock.tick(CHALLENGE_SECONDS)
    reply = api.call("POST", "/api/v1/login/passkey", {
        "challenge_id": options["challenge_id"],
        "credential": authenticator.get(credential, options["options"])})
    assert reply.status == 401


def test_a_signature_counter_going_backwards_is_refused(api, alice):
    _, credential = alice
    assert passkey_login(api, credential, counter=5).status == 200
    assert passkey_login(api, credential, counter=3).status == 401
    assert passkey_login(api, credential, counter=6).status == 200


def test_an_authenticator_without_a_counter_keeps_working(api):
    token = api.user()
    credential, _ = register(api, token)
    assert [passkey_login(api, credential, counter=0).status for _ in range(2)] == [200, 200]


def test_a_credential_claiming_another_user_is_refused(api, alice):
    _, credential = alice
    bob = api.user("bob")
    register(api, bob)
    bobs_handle = api.call("GET", "/api/v1/users/me", token=bob).json["id"].encode()
    reply = passkey_login(api, credential, user_handle=bobs_handle)
    assert reply.status == 401


def test_a_removed_passkey_no_longer_logs_in(api, alice):
    token, credential = alice
    [listed] = api.call("GET", "/api/v1/users/me/mfa", token=token).json["passkeys"]
    wrong = api.call("DELETE", f"{PASSKEYS}/{listed['id']}", {"password": "wrong password"},
                     token=token)
    assert wrong.status == 403
    reply = api.call("DELETE", f"{PASSKEYS}/{listed['id']}", {"password": PASSWORD}, token=token)
    assert reply.status == 200 and reply.json == {"deleted": True}
    assert passkey_login(api, credential).status == 401
    assert api.login().status == 200  # no second factor left


def test_removing_an_unknown_passkey_is_404(api, alice):
    token, _ = alice
    reply = api.call("DELETE", f"{PASSKEYS}/nope", {"password": PASSWORD}, token=token)
    assert reply.status == 404 and reply.json["error"] == "passkey_not_found"


# --- the second step of a password login -------------------------------------------

def test_a_passkey_is_a_second_factor_of_a_password_login(api, alice):
    token, credential = alice
    reply = api.login()
    assert reply.status == 403 and reply.json["methods"] == ["passkey"]
    done = mfa_with(api, credential)
    assert done.status == 200
    assert events(api, token)[0]["method"] == "password+passkey"


def test_the_second_steps_options_allow_only_that_users_passkeys(api, alice):
    _, credential = alice
    register(api, api.user("bob"))
    mfa_token = api.login().json["mfa_token"]
    options = api.call("POST", "/api/v1/login/passkey/options", {"mfa_token": mfa_token}).json
    allowed = [c["id"] for c in options["options"]["allowCredentials"]]
    assert allowed == [authenticator.b64url(credential.id)]


def test_another_users_passkey_cannot_finish_a_second_step(api, alice):
    _, alices = alice
    bob = api.user("bob")
    register(api, bob)
    reply = mfa_with(api, alices, username="bob")
    assert reply.status == 401 and reply.json["error"] == "invalid_code"


def test_a_refused_passkey_counts_toward_nothing(api, alice):
    _, credential = alice
    mfa_token = api.login().json["mfa_token"]
    for _ in range(6):
        options = api.call("POST", "/api/v1/login/passkey/options",
                           {"mfa_token": mfa_token}).json
        bad = authenticator.get(credential, options["options"], flags=UP)
        reply = api.call("POST", "/api/v1/login/mfa", {"mfa_token": mfa_token,
                                                       "credential": bad})
        assert reply.status == 401
    assert mfa_with(api, credential).status == 200  # neither the token nor the backoff counted


def test_a_second_steps_passkey_needs_its_options_first(api, alice):
    _, credential = alice
    mfa_token = api.login().json["mfa_token"]
    stray = api.call("POST", "/api/v1/login/passkey/options", {}).json  # not this step's
    reply = api.call("POST", "/api/v1/login/mfa", {
        "mfa_token": mfa_token, "credential": authenticator.get(credential, stray["options"])})
    assert reply.status == 401


def test_options_for_an_unknown_mfa_token_are_400(api):
    reply = api.call("POST", "/api/v1/login/passkey/options", {"mfa_token": "nope"})
    assert reply.status == 400 and reply.json["error"] == "invalid_mfa_token"


def test_every_second_factor_type_is_reachable(api, alice, monkeypatch):
    """With the TOTP tests' user: each of the second factors' event types."""
    from test_second_factor import Totp

    token, credential = alice
    clock_now = [float(int(__import__("time").time()))]
    monkeypatch.setattr("chalicelib.clock.now", lambda: clock_now[0])

    class Clock:
        @property
        def now(self):
            return clock_now[0]

        def tick(self, seconds=30):
            clock_now[0] += seconds

    user = Totp(api, Clock(), "carol")
    user.second_step(user.mfa_token(), code="000000")
    user.second_step(user.mfa_token(), recovery_code=user.recovery_codes[0])
    api.call("POST", "/api/v1/users/me/mfa/recovery-codes",
             {"password": PASSWORD, "code": user.code()}, token=user.token)
    api.call("DELETE", "/api/v1/users/me/mfa/totp", {"password": PASSWORD, "code": user.code()},
             token=user.token)
    passkey_id = api.call("GET", "/api/v1/users/me/mfa", token=token).json["passkeys"][0]["id"]
    api.call("DELETE", f"{PASSKEYS}/{passkey_id}", {"password": PASSWORD}, token=token)
    seen = {e["type"] for e in events(api, user.token) + events(api, token)}
    assert set(FACTOR_EVENT_TYPES) <= seen


def test_the_authorizers_cold_start_loads_no_second_factor_code():
    """app.py imported afresh, as Lambda imports it for the authorizer:
    pyotp, fido2, cryptography, segno and the modules that use them
    are loaded by the second-factor routes only."""
    import subprocess
    import sys

    from conftest import ROOT

    probe = ("import sys, app; print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('pyotp', 'fido2', 'cryptography', 'segno') or m in ('chalicelib.totp', "
             "'chalicelib.passkeys', 'chalicelib.factor_store', 'chalicelib.service.factors', "
             "'chalicelib.service.factor_logins')))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_passkey_registered_again_is_refused(api, alice):
    """An authenticator that ignores excludeCredentials: one credential,
    one passkey."""
    token, credential = alice
    _, again = register(api, token, credential=credential)
    assert again.status == 400 and again.json["error"] == "invalid_credential"
    assert len(api.call("GET", "/api/v1/users/me/mfa", token=token).json["passkeys"]) == 1


@pytest.mark.parametrize("credential", [{}, {"id": "x", "rawId": "x", "type": "public-key"},
                                        {"response": {"userHandle": "not base64 !"}}])
def test_a_malformed_assertion_is_401_never_a_500(api, credential):
    options = api.call("POST", "/api/v1/login/passkey/options", {}).json
    reply = api.call("POST", "/api/v1/login/passkey", {"challenge_id": options["challenge_id"],
                                                       "credential": credential})
    assert reply.status == 401 and reply.json["error"] == "invalid_credentials"


def racing(monkeypatch, method, count=2):
    """Patches FactorStore ``method`` so that ``count`` threads each read
    and then wait for the others: the widest window for a lost race (the
    test's own thread reads as usual)."""
    import threading

    from chalicelib.factor_store import FactorStore

    barrier, original = threading.Barrier(count), getattr(FactorStore, method)
    waited = threading.local()

    def read_then_wait(self, *args):
        found = original(self, *args)
        if threading.current_thread() is threading.main_thread():
            return found
        if not getattr(waited, "done", False):  # only each thread's first read
            waited.done = True
            barrier.wait(timeout=20)
        return found

    monkeypatch.setattr(FactorStore, method, read_then_wait)


def run_together(*calls):
    import threading

    from chalicelib import contract
    from chalicelib.errors import ServiceError

    statuses = [None] * len(calls)

    def one(i):
        try:
            calls[i]()
            statuses[i] = 200
        except ServiceError as exc:
            statuses[i] = contract.status(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return statuses


def test_two_passkeys_registered_at_once_are_both_kept(api, monkeypatch, one_call_at_a_time):
    """Both read the factors at one version; the loser reads them again."""
    from chalicelib import identity, service
    from chalicelib.identity import NOWHERE
    from chalicelib.service import factors

    token = api.user()
    me = api.call("GET", "/api/v1/users/me", token=token).json
    from conftest import claims_of

    caller = identity.Identity(me["id"], claims_of(token)["jti"], "alice")
    made = []
    for _ in range(2):
        options = factors.registration_options(caller)
        made.append((options["challenge_id"], authenticator.create(options["options"])[1]))
    racing(monkeypatch, "get")
    statuses = run_together(*(lambda c=c, m=m: factors.add_passkey(caller, c, m, "key", NOWHERE)
                              for c, m in made))
    assert statuses == [200, 200]
    assert len(service.factors.status(caller)["passkeys"]) == 2


def test_two_logins_racing_with_one_counter_value_open_one_session(api, alice, monkeypatch,
                                                                   one_call_at_a_time):
    """A cloned authenticator racing the real one with the same counter:
    both verify against the counter as read; the write's condition on it
    lets one through."""
    from chalicelib.service import factor_logins

    _, credential = alice
    bodies = []
    for _ in range(2):
        options = factor_logins.login_options()
        bodies.append((options["challenge_id"],
                       authenticator.get(credential, options["options"], counter=7)))
    racing(monkeypatch, "read")
    statuses = run_together(*(lambda c=c, a=a: factor_logins.with_passkey(c, a, "phone",
                                                                          "203.0.113.7")
                              for c, a in bodies))
    assert sorted(statuses) == [200, 401]
