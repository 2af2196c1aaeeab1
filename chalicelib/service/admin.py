"""What admins and operators do to other users.

An admin route (:func:`target`) reads the caller's current roles and the
target's login in one strongly consistent call: a non-admin is refused (403)
before the target's existence counts, so the answer tells it nothing about
which users exist. An operator (manage.py) grants and revokes the admin
role (:func:`grant_admin`, :func:`revoke_admin`: the profile, the login and
the event in one transaction) and deletes users (:func:`delete_user`).
"""
from chalicelib import audit, clock, login_store, stores
from chalicelib.errors import Forbidden, ServiceUnavailable, UserNotFound
from chalicelib.event_store import new_event
from chalicelib.identity import NOWHERE
from chalicelib.service.account import begin_deletion, erase
from chalicelib.stores import StaleWrite, Transaction
from chalicelib.terms import ADMIN

# An operator's deletion that keeps meeting password changes.
_DELETE_TRIES = 3


def target(caller, username):
    """The login of ``username``, for an admin route called by ``caller``.

    The caller's current roles decide, not the ones it had at login: they
    are read with the target, in one strongly consistent read.
    """
    name = login_store.name(username)
    reads = [stores.users().read_roles(caller.user_id), stores.logins().read_login(name)]
    roles, found = stores.read(*filter(None, reads), attempts=6) + [None] * name.malformed
    if roles is None or ADMIN not in roles:
        raise Forbidden()
    if found is None:
        raise UserNotFound()
    return found


def find_user(username):
    """The login of ``username`` (any case)."""
    login = stores.logins().get_login(login_store.name(username))
    if login is None:
        raise UserNotFound()
    return login


def delete_user(username):
    """An operator's deletion: no password, and it also finishes a deletion
    that failed half-way (whose owner cannot log in to retry it)."""
    name = login_store.name(username)
    for _ in range(_DELETE_TRIES):
        login = stores.logins().get_login(name)
        if login is None:
            raise UserNotFound()
        if begin_deletion(login):
            return erase(login, name, None, "operator")
        # The password changed between the read and the mark: read again.
    raise ServiceUnavailable(operation="delete_user", code="lost_races", attempts=_DELETE_TRIES)


def grant_admin(username):
    """Give ``username`` the admin role; its other roles are kept. Returns
    whether anything changed."""
    return _set_admin(username, True)


def revoke_admin(username):
    """Take the admin role from ``username``; its other roles are kept.
    Returns whether anything changed."""
    return _set_admin(username, False)


def _set_admin(username, admin):
    login = find_user(username)
    if login.deleting:
        raise UserNotFound("That user's deletion is under way.")
    user = stores.users().get_user(login.user_id)
    if user is None:
        raise UserNotFound()
    if (ADMIN in user.roles) == admin:
        return False
    roles = user.roles + [ADMIN] if admin else [r for r in user.roles if r != ADMIN]
    tx = Transaction()
    tx.add(stores.users().set_roles(login.user_id, roles), stores.logins().set_roles(login, roles),
           stores.events().record(login.user_id, new_event(
               clock.now(), "role_granted" if admin else "role_revoked", "operator", NOWHERE)))
    try:
        tx.commit()
    except StaleWrite:
        raise UserNotFound("That user was deleted, or its deletion began, meanwhile.") from None
    audit.event("role_granted" if admin else "role_revoked", user_id=login.user_id,
                role=ADMIN, by="operator")
    return True


def verify_email(username):
    """An operator's word that ``username``'s address is its own (checked
    another way). Returns whether anything changed."""
    login = find_user(username)
    user = stores.users().get_user(login.user_id)
    if user is None or login.deleting:
        raise UserNotFound()
    if user.email_verified:
        return False
    tx = Transaction()
    tx.add(stores.users().set_verified(user), stores.logins().unchanged(login),
           stores.events().record(login.user_id, new_event(clock.now(), "email_verified",
                                                           "operator", NOWHERE)))
    try:
        tx.commit()
    except StaleWrite:
        raise UserNotFound("That user was deleted, or its address changed, meanwhile.") from None
    audit.event("email_verified", user_id=login.user_id, by="operator")
    return True
