"""The logins second factors make: the second step of a password login, and
a passkey login.

The second step of a password login (:func:`second_step`), after
login.with_password answered mfa_required:

1. read the mfa_token (400 invalid_mfa_token: unknown, spent, expired or
   out of wrong codes);
2. read the login, its failed attempts and the factors, in one call (400
   too when the password changed since the token was issued);
3. a code: reserve, as a password is (a failed login until the login
   completes, an mfa_failed event, 429 while locked); a passkey: take the
   challenge of this step (it works once; a refused passkey counts nothing);
4. check the code (a TOTP step later than the last one used, or an unused
   recovery code) or verify the passkey's assertion (401 invalid_code; a
   wrong code also counts on the token, which dies with the fifth);
5. open the session as a password login does (login._open): the same
   transaction spends the token, the code and the passkey's counter, so a
   code raced by another request opens one session at most.

A passkey login (:func:`with_passkey`): take the challenge, read the user
and the factors that the assertion claims, verify it, open the session.
"""
from chalicelib import audit, clock, login_store, passkeys, stores, totp
from chalicelib.errors import InvalidCode, InvalidCredentials, InvalidMfaToken
from chalicelib.event_store import new_event
from chalicelib.factor_store import none, password_mark, recovery_hash
from chalicelib.identity import Origin
from chalicelib.ids import USER_ID
from chalicelib.service.factors import new_challenge, taken_challenge
from chalicelib.service.login import Check, _new_session, _open, _reserve, _signed
from chalicelib.stores import StaleWrite


def login_options(mfa_token=None):
    """A challenge, and the options for ``navigator.credentials.get``: any
    passkey of this relying party, or, for the second step ``mfa_token``,
    only that user's."""
    if mfa_token is None:
        challenge = new_challenge("login", None)
        return {"challenge_id": challenge.id,
                "options": passkeys.request_options(challenge.challenge)}
    store = stores.factors()
    mfa = _live_mfa_token(mfa_token, clock.now())
    challenge = new_challenge("mfa", mfa.user_id)
    if not store.attach_challenge(mfa, challenge.id):
        raise InvalidMfaToken()
    allow = [p.credential_id for p in store.get(mfa.user_id).passkeys]
    return {"challenge_id": challenge.id,
            "options": passkeys.request_options(challenge.challenge, allow)}




def second_step(mfa_token, ip, code=None, recovery_code=None, credential=None):
    """The login that mfa_required began, finished by one second factor
    (the steps above)."""
    now, factor_store = clock.now(), stores.factors()
    mfa = _live_mfa_token(mfa_token, now)
    name = login_store.name(mfa.username)
    logins = stores.logins()
    login, attempts, factors = stores.read(logins.read_login(name), logins.read_attempts(name),
                                           factor_store.read(mfa.user_id), attempts=6)
    if (login is None or login.deleting or login.user_id != mfa.user_id
            or password_mark(login.password_hash) != mfa.password):
        raise InvalidMfaToken()  # the password changed (or was reset) since its check
    factors = factors or none(mfa.user_id)
    origin = Origin(ip, mfa.description)
    session = _new_session(login, now, mfa.description, ip)
    if credential is not None:
        check = Check(name, login, None, [])
        spent, method = [_asserted(factors, credential, taken_challenge(mfa.challenge_id, "mfa", now),
                                   now, InvalidCode)], "password+passkey"
    else:
        check = _reserve(name, login, attempts, now, origin, failure="mfa_failed", via="mfa")
        spent, method = _spent_code(factors, code, recovery_code, now, origin, session)
        if spent is None:
            factor_store.count_wrong(mfa)
            audit.event("mfa_failed", **audit.attempt(name, login),
                        failures=check.counted.failures)
            raise InvalidCode()
    spent.append(factor_store.spend_mfa_token(mfa))
    with check.released_on_outage():
        try:
            evicted = _open(check, session, None, now, origin, method, spent)
        except StaleWrite:
            # Another request spent the token, the code or the counter first.
            raise InvalidCode() from None
    audit.event("login", user_id=login.user_id, token_id=session.token_id, evicted=len(evicted),
                method=method)
    return _signed(session, int(now))


def _live_mfa_token(mfa_token, now):
    mfa = stores.factors().get_mfa_token(mfa_token)
    if mfa is None or mfa.expires_at <= now:
        raise InvalidMfaToken()
    return mfa


def _spent_code(factors, code, recovery_code, now, origin, session):
    """The writes that spend a right code, and the login's method; (None,
    None) for a wrong one."""
    store = stores.factors()
    if code is not None:
        step = (totp.matching_step(factors.totp_secret, code, now, factors.totp_step)
                if factors.totp_secret else None)
        return ([store.spend_step(factors, step)], "password+totp") if step is not None \
            else (None, None)
    hashed = recovery_hash(factors.user_id, recovery_code)
    if hashed not in factors.recovery:
        return None, None
    used = new_event(now, "recovery_code_used", "self", origin, session.token_id, after=1)
    return ([store.spend_recovery(factors.user_id, hashed),
             stores.events().record(factors.user_id, used)], "password+recovery_code")


def _asserted(factors, credential, challenge, now, error):
    """The write of the passkey's new counter, once ``credential`` verifies
    as an assertion of one of ``factors``' passkeys for ``challenge``;
    ``error`` otherwise."""
    if challenge is None or challenge.user_id not in (None, factors.user_id):
        raise error()
    try:
        credential_id, _ = passkeys.claimed(credential)
        passkey = factors.passkey(credential_id)
        if passkey is None:
            raise passkeys.Refused("not a passkey of this user")
        count = passkeys.verify_assertion(credential, challenge.challenge, passkey.public_key,
                                          passkey.sign_count)
    except passkeys.Refused as exc:
        audit.event("passkey_refused", user_id=factors.user_id, step="assertion",
                    reason=str(exc))
        raise error() from None
    return stores.factors().count_use(factors.user_id, passkey, count, now)


def with_passkey(challenge_id, credential, description, ip):
    """A token for whoever holds the passkey that ``credential`` asserts,
    for the challenge ``challenge_id``: no password. The backoff does not
    refuse it (an assertion cannot be guessed), and a success clears it."""
    now = clock.now()
    challenge = taken_challenge(challenge_id, "login", now)
    try:
        _, handle = passkeys.claimed(credential)
    except passkeys.Refused:
        raise InvalidCredentials() from None
    if challenge is None or not handle or not USER_ID.fullmatch(handle):
        raise InvalidCredentials()
    user, factors = stores.read(stores.users().read_user(handle), stores.factors().read(handle),
                                attempts=6)
    if user is None or factors is None:
        raise InvalidCredentials()
    spent = [_asserted(factors, credential, challenge, now, InvalidCredentials)]
    name = login_store.name(user.username)
    login = stores.logins().get_login(name)
    if login is None or login.deleting or login.user_id != user.id:
        raise InvalidCredentials()
    check = Check(name, login, None, [])
    session = _new_session(login, now, description, ip)
    with check.released_on_outage():
        try:
            evicted = _open(check, session, None, now, Origin(ip, description), "passkey", spent)
        except StaleWrite:
            raise InvalidCredentials() from None  # the counter moved: a racing use
    audit.event("login", user_id=login.user_id, token_id=session.token_id, evicted=len(evicted),
                method="passkey")
    return _signed(session, int(now))
