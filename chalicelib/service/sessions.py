"""A user's sessions: logout, revocation, and the listing of tokens.

A revocation of one token (:func:`logout`, :func:`revoke`) is one small
transaction: the token's delete, on condition that it is live, its event,
and a condition that the account's deletion has not begun. A revocation of
all (:func:`revoke_all`), by the user or an admin, lists the tokens, then
deletes them and records it, in one transaction as far as it holds them.
"""
from chalicelib import audit, clock, cursor, stores
from chalicelib.errors import TokenNotFound
from chalicelib.event_store import new_event
from chalicelib.identity import NOWHERE
from chalicelib.ids import TIMED_ID
from chalicelib.stores import StaleWrite, Transaction
from chalicelib.token_store import live_count


def logout(identity, origin=NOWHERE):
    """Revoke the token that makes the request; 1 when it was live."""
    revoked = int(_revoke_one(identity, identity.token_id, "logout", origin))
    audit.event("logout", user_id=identity.user_id, token_id=identity.token_id, revoked=revoked)
    return revoked


def revoke(identity, token_id, origin=NOWHERE):
    """Revoke one of the caller's live tokens; TokenNotFound otherwise."""
    if not TIMED_ID.fullmatch(token_id) or not _revoke_one(identity, token_id, "token_revoked",
                                                           origin):
        raise TokenNotFound()
    audit.event("revoke", user_id=identity.user_id, token_id=token_id, by=identity.user_id)
    return 1


def _revoke_one(identity, token_id, kind, origin):
    """Revoke a live token of the caller and record it, in one small
    transaction; whether the token was live."""
    now, sessions = clock.now(), stores.tokens()
    tx = Transaction()
    tx.add(sessions.revoke_live(identity.user_id, token_id, now),
           stores.logins().unchanged(identity),
           stores.events().record(identity.user_id, new_event(now, kind, "self", origin,
                                                              token_id)))
    try:
        tx.commit()
        return True
    except StaleWrite as exc:
        if "session" in exc.failed:
            return False  # gone or expired already: nothing to revoke, nothing to record
    # The account's deletion has begun, which deletes its log: the token
    # goes unrecorded, as it would with the rest of the account.
    alone = Transaction()
    alone.add(sessions.revoke_live(identity.user_id, token_id, now))
    try:
        alone.commit()
        return True
    except StaleWrite:
        return False


def revoke_all(owner, keep=None, admin=None, origin=NOWHERE):
    """Delete every token of ``owner`` (an Identity or a Login) but ``keep``,
    and record it, by the user itself or by the admin whose user id is
    ``admin``; the count of live ones."""
    store, now = stores.tokens(), clock.now()
    doomed = [(t, exp) for t, exp in store.all_keys(owner.user_id) if t != keep]
    if doomed:
        tx = Transaction()
        tx.add(stores.logins().unchanged(owner),
               stores.events().record(owner.user_id, new_event(
                   now, "tokens_revoked", "admin" if admin else "self", origin)))
        # Expired records first: when they do not all fit, the ones that go
        # before the transaction (and stay gone if it fails) are dead already.
        doomed.sort(key=lambda key: (key[1] > now, key[0]))
        tx.add_spillable(*(store.delete(owner.user_id, t) for t, _ in doomed))
        try:
            tx.commit()
        except StaleWrite:
            # The account's deletion has begun, which deletes its log.
            store.delete_many(owner.user_id, [t for t, _ in doomed])
    revoked = live_count(doomed, now)
    audit.event("revoke_all", user_id=owner.user_id, kept=keep, revoked=revoked,
                by=admin or owner.user_id)
    return revoked


def list_tokens(caller, user_id, page):
    """A page (cursor.Page) of ``user_id``'s live tokens, newest first.

    ``current`` marks the token making the request, so an admin sees it in
    a listing of its own tokens and never in another user's.
    """
    now = clock.now()
    found, more = stores.tokens().page(user_id, now, page.limit, page.before)
    live = [s for s in found if s.expiry > now]
    if len(live) < len(found):
        # Dead by a lowered TOKEN_MAX_LIFETIME_SECONDS: the oldest, so every
        # token after them is too.
        found, more = live, False
    mine = caller.user_id == user_id
    return {
        "tokens": [_token_view(s, mine and s.token_id == caller.token_id) for s in found],
        "next_cursor": cursor.issue(page.scope, found[-1].token_id) if more else None,
    }


def _token_view(session, current):
    return {
        "id": session.token_id, "description": session.description, "ip": session.ip,
        "created_at": clock.iso(session.created_at),
        "expires_at": clock.iso(session.expiry),
        "last_used_at": clock.iso(session.last_used_at) if session.last_used_at else None,
        "current": current,
    }
