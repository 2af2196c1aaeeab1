"""Second factors and passkeys: what the user has, and setting them up.

Changes of the factors (TOTP set up, confirmed, disabled; recovery codes
renewed; passkeys added and removed; an operator's reset): each is one
transaction of the factors (conditional on their version as read), the
login's second_factor mark, the event and its notice; a change that needs
the password checks it first (login.check_password: counted, 403, 429
while locked) and settles the check (Check.succeeded, Check.uncount). The
logins that second factors make are service/factor_logins.py's.
"""
import secrets

from chalicelib import audit, clock, config, passkeys, stores, totp
from chalicelib.errors import (InvalidCode, InvalidCredential, PasskeyNotFound,
                               ReauthenticationRequired, ServiceUnavailable, TotpEnabled,
                               TotpNotEnabled, TotpNotPending, UserNotFound)
from chalicelib.event_store import new_event
from chalicelib.factor_store import Challenge, Passkey, none, recovery_hash
from chalicelib.identity import NOWHERE
from chalicelib.ids import created_at, new_timed_id
from chalicelib.service.admin import find_user
from chalicelib.service.login import check_password
from chalicelib.stores import StaleWrite, Transaction
from chalicelib.terms import (CHALLENGE_SECONDS, MAX_PASSKEYS, RECENT_LOGIN_SECONDS,
                              RECOVERY_CODES)

# A change of the factors that keeps meeting another change of them.
_CHANGE_TRIES = 3
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


# --- what the user has --------------------------------------------------------

def status(identity):
    factors = stores.factors().get(identity.user_id)
    return {"totp": bool(factors.totp_secret),
            "passkeys": [_shown(p) for p in factors.passkeys],
            "recovery_codes_left": len(factors.recovery)}


def _shown(passkey):
    return {"id": passkey.id, "name": passkey.name, "created_at": clock.iso(passkey.created_at),
            "last_used_at": clock.iso(passkey.last_used_at) if passkey.last_used_at else None}


# --- TOTP and recovery codes --------------------------------------------------

def start_totp(identity, password, origin):
    """A new TOTP secret, pending until :func:`confirm_totp` (a new call
    replaces a pending one); 409 while TOTP is enabled."""
    if stores.factors().get(identity.user_id).totp_secret:
        raise TotpEnabled()
    check = check_password(identity, password, "totp_setup", origin)
    secret = totp.new_secret()
    with check.released_on_outage():
        _change(identity, lambda factors: _refuse_enabled(factors) or [
            stores.factors().set_pending(factors, secret), *check.succeeded()], check)
    audit.event("totp_pending", user_id=identity.user_id)
    uri = totp.uri(secret, identity.username, config.SERVICE_NAME)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": totp.qr_svg(uri)}


def _refuse_enabled(factors):
    if factors.totp_secret:
        raise TotpEnabled()


def confirm_totp(identity, code, origin):
    """TOTP enabled by a first code of the pending secret; its 10 recovery
    codes, shown this once. A wrong code does not count as a failed login
    (the pending secret guards nothing yet), but the fifth drops the secret:
    a stolen token must not enable, by guessing, a secret nobody knows."""
    now = clock.now()
    codes = _new_recovery_codes()

    def writes(factors):
        if not factors.totp_pending:
            raise TotpNotPending()
        step = totp.matching_step(factors.totp_pending, code, now)
        if step is None:
            stores.factors().count_pending_wrong(factors)
            raise InvalidCode()
        return [stores.factors().confirm_totp(factors, step, _hashes(identity.user_id, codes)),
                stores.logins().set_second_factor(identity, True),
                *_noticed(identity, now, "mfa_enabled", origin)]
    _change(identity, writes)
    audit.event("mfa_enabled", user_id=identity.user_id, method="totp")
    return {"recovery_codes": codes}


def disable_totp(identity, password, code, origin):
    """TOTP off, with its recovery codes, by the password and a code."""
    now = clock.now()
    check = _checked_with_code(identity, password, code, now, "totp_disable", origin)
    with check.released_on_outage():
        _change(identity, lambda factors: [
            stores.factors().disable_totp(factors, _step(factors, code, now)),
            stores.logins().set_second_factor(identity, bool(factors.passkeys)),
            *_noticed(identity, now, "mfa_disabled", origin), *check.succeeded()], check)
    audit.event("mfa_disabled", user_id=identity.user_id, method="totp", by="self")
    return {"totp": False}


def renew_recovery_codes(identity, password, code, origin):
    """Ten new recovery codes, the old ones dead, by the password and a code."""
    now = clock.now()
    check = _checked_with_code(identity, password, code, now, "recovery_codes", origin)
    codes = _new_recovery_codes()
    with check.released_on_outage():
        _change(identity, lambda factors: [
            stores.factors().renew_recovery(factors, _step(factors, code, now),
                                            _hashes(identity.user_id, codes)),
            *_noticed(identity, now, "recovery_codes_renewed", origin), *check.succeeded()],
                check)
    audit.event("recovery_codes_renewed", user_id=identity.user_id)
    return {"recovery_codes": codes}


def _checked_with_code(identity, password, code, now, via, origin):
    """The password's Check, once the code is right too. A wrong code
    leaves the check counted as a failed login: a stolen token and a known
    password must not buy unlimited guesses at the codes."""
    factors = stores.factors().get(identity.user_id)
    if not factors.totp_secret:
        raise TotpNotEnabled()
    check = check_password(identity, password, via, origin)
    _step(factors, code, now)
    return check


def _step(factors, code, now):
    """The time step of a right, unused ``code`` of the factors' TOTP."""
    if not factors.totp_secret:
        raise TotpNotEnabled()
    step = totp.matching_step(factors.totp_secret, code, now, factors.totp_step)
    if step is None:
        raise InvalidCode()
    return step


def _new_recovery_codes():
    """Ten codes of 16 characters of base32 (80 random bits each), shown in
    groups of four; typed with or without the dashes, in any case."""
    codes = []
    for _ in range(RECOVERY_CODES):
        plain = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(plain[i:i + 4] for i in range(0, 16, 4)))
    return codes


def _hashes(user_id, codes):
    return [recovery_hash(user_id, c) for c in codes]


# --- passkeys -------------------------------------------------------------------

def registration_options(identity):
    """A challenge, and the options for ``navigator.credentials.create``
    that exclude the user's passkeys."""
    _recently_signed_in(identity)
    user, factors = stores.read(stores.users().read_user(identity.user_id),
                                stores.factors().read(identity.user_id), attempts=6)
    if user is None:
        raise UserNotFound()
    challenge = new_challenge("register", identity.user_id)
    exclude = [p.credential_id for p in (factors or none(identity.user_id)).passkeys]
    return {"challenge_id": challenge.id,
            "options": passkeys.creation_options(challenge.challenge, identity.user_id,
                                                 user.username, exclude)}


def _recently_signed_in(identity):
    """A passkey logs in on its own and outlives every token, so adding one
    takes more than a token: the login that made it RECENT_LOGIN_SECONDS
    ago at most (read off the token's id, no read). A token stolen later
    in its life cannot make itself a way in that survives its revocation."""
    if clock.now() - created_at(identity.token_id) > RECENT_LOGIN_SECONDS:
        raise ReauthenticationRequired()


def add_passkey(identity, challenge_id, credential, name, origin):
    """A passkey made for the challenge ``challenge_id`` of this user."""
    _recently_signed_in(identity)
    now = clock.now()
    challenge = taken_challenge(challenge_id, "register", now)
    if challenge is None or challenge.user_id != identity.user_id:
        raise InvalidCredential()
    try:
        made = passkeys.verify_registration(credential, challenge.challenge)
    except passkeys.Refused as exc:
        audit.event("passkey_refused", user_id=identity.user_id, step="registration",
                    reason=str(exc))
        raise InvalidCredential() from None
    passkey = Passkey(new_timed_id(now), made.credential_id, made.public_key, made.sign_count,
                      name, int(now), None)

    def writes(factors):
        if factors.passkey(made.credential_id):
            raise InvalidCredential("This passkey is registered already.")
        if len(factors.passkeys) >= MAX_PASSKEYS:
            raise InvalidCredential(f"This account has {MAX_PASSKEYS} passkeys, the most it may "
                                    "have: remove one first.")
        return [stores.factors().add_passkey(factors, passkey),
                stores.logins().set_second_factor(identity, True),
                *_noticed(identity, now, "passkey_added", origin)]
    _change(identity, writes)
    audit.event("passkey_added", user_id=identity.user_id)
    return _shown(passkey)


def remove_passkey(identity, passkey_id, password, origin):
    """One of the user's passkeys removed, by the password."""
    if not any(p.id == passkey_id for p in stores.factors().get(identity.user_id).passkeys):
        raise PasskeyNotFound()
    check = check_password(identity, password, "passkey_removal", origin)
    now = clock.now()

    def writes(factors):
        if not any(p.id == passkey_id for p in factors.passkeys):
            raise PasskeyNotFound()
        left = [p for p in factors.passkeys if p.id != passkey_id]
        return [stores.factors().remove_passkey(factors, passkey_id),
                stores.logins().set_second_factor(identity, bool(factors.totp_secret or left)),
                *_noticed(identity, now, "passkey_removed", origin), *check.succeeded()]
    with check.released_on_outage():
        _change(identity, writes, check)
    audit.event("passkey_removed", user_id=identity.user_id)

def new_challenge(purpose, user_id):
    """A WebAuthn challenge of ``purpose`` (register, login, mfa), stored
    for CHALLENGE_SECONDS."""
    now = clock.now()
    challenge = Challenge(secrets.token_urlsafe(24), purpose, passkeys.new_challenge(), user_id,
                          int(now) + CHALLENGE_SECONDS)
    stores.factors().put_challenge(challenge)
    return challenge


def taken_challenge(challenge_id, purpose, now):
    """The challenge ``challenge_id`` of ``purpose``, spent as it is read;
    None when it is unknown, spent, expired or of another purpose."""
    challenge = stores.factors().take_challenge(challenge_id) if challenge_id else None
    if challenge is None or challenge.purpose != purpose or challenge.expires_at <= now:
        return None
    return challenge

# --- an operator's reset ----------------------------------------------------------

def reset(username):
    """Every second factor of ``username`` removed (a lost phone), by an
    operator; False when there was none."""
    login = find_user(username)
    factors = stores.factors().get(login.user_id)
    if factors.version is None:
        return False
    tx = Transaction()
    tx.add(stores.factors().delete(login.user_id), stores.logins().set_second_factor(login, False),
           stores.events().record(login.user_id, new_event(clock.now(), "mfa_disabled",
                                                           "operator", NOWHERE)),
           stores.outbox().notice(login.user_id, "mfa_disabled", NOWHERE))
    try:
        tx.commit()
    except StaleWrite:
        raise UserNotFound("That user was deleted, or its deletion began, meanwhile.") from None
    audit.event("mfa_disabled", user_id=login.user_id, method="all", by="operator")
    return True


# --- shared steps ------------------------------------------------------------------

def _change(identity, writes, check=None):
    """One transaction of ``writes(factors)`` (the factors as read now),
    tried again when another change of the factors won the race; then the
    password ``check`` that allowed it is settled (Check.uncount)."""
    for _ in range(_CHANGE_TRIES):
        tx = Transaction()
        tx.add(*writes(stores.factors().get(identity.user_id)))
        try:
            tx.commit()
            if check is not None:
                check.uncount()
            return
        except StaleWrite as exc:
            if "login" in exc.failed:
                raise UserNotFound("This account's deletion is under way.") from None
            if "second_factor" not in exc.failed:
                raise
    raise ServiceUnavailable(operation="change_factors", code="lost_races",
                             attempts=_CHANGE_TRIES)


def _noticed(identity, now, kind, origin):
    """The event of a change of the factors, and its notice to the account's
    address (the owner learns of a factor added by whoever holds a token)."""
    return [stores.events().record(identity.user_id, new_event(now, kind, "self", origin,
                                                               identity.token_id)),
            stores.outbox().notice(identity.user_id, kind, origin)]
