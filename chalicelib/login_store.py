"""The items of the users table that a username keys: the login and the
failed attempts.

``username#<folded>``   the login: user_id, username (as typed at signup),
                        roles, password_hash, logins (a counter),
                        ``deleting`` while an account deletion runs, and
                        ``fence_until`` and ``fence_id`` while a password
                        change holds new logins off (:meth:`LoginStore.fence`),
                        ``second_factor`` while the user has one (so that a
                        login knows it without another read)
``attempts#<hmac>``     attempts at the password of a username (any case):
                        failures, locked_until, expires_at (also the TTL)
``attempts#malformed#<hmac>``  the same for a name that breaks the username
                        rule, hashed exactly as typed: a lookalike such as
                        a Kelvin sign for ``k`` never shares a real user's

A name is folded and keyed once, by :func:`name`, where a use case takes it
from a request; every method here takes that :class:`Name` (or a
:class:`Login`, which carries its own key) and never folds again.

An attempts key is an HMAC of the name under a key derived from the
signing secret, never a plain hash: people type passwords into the username
field, and a table export must not be open to a dictionary attack on them.

The login is also a uniqueness guard (signup writes it on condition that
its key is new, labelled ``username``), and holds the password hash so that
a login needs one read to find and check a user. Writes that belong in a
transaction are returned as writes (unit_of_work.Write).
"""
import hashlib
import hmac
from collections import namedtuple
from dataclasses import dataclass

from chalicelib import backoff, dynamo, signing_keys, unit_of_work
from chalicelib.dynamo import N, S
from chalicelib.errors import ServiceUnavailable
from chalicelib.usernames import folded_username

_ATTEMPTS_KEY_LABEL = b"login-service/attempts-key/v1"
# How long a password change's fence holds new logins off at most: longer
# than the function's timeout, so that a change still running is never
# overtaken by the expiry of its own fence, and short enough that a change
# that died half-way does not keep the owner out for long.
FENCE_SECONDS = 20


class Name(namedtuple("Name", "typed folded login_key attempts_key")):
    """A username as a request typed it, folded and keyed once.

    ``folded`` and ``login_key`` are None for a name that breaks the rule:
    no user has it, so it is never read, and its attempts count apart.
    """

    __slots__ = ()

    @property
    def malformed(self):
        return self.folded is None


def name(typed):
    """``typed`` folded and keyed, once per request (see the module's docstring)."""
    folded = folded_username(typed)
    if folded is None:
        return Name(typed, None, None, {"pk": S("attempts#malformed#" + _keyed(typed))})
    # Hashed: a login may name any string, and keys are limited in size.
    # The two spaces differ by prefix, so a lookalike never meets a name.
    return Name(typed, folded, _login_key(folded), {"pk": S("attempts#" + _keyed(folded))})


def _login_key(folded):
    return {"pk": S("username#" + folded)}


def _keyed(text):
    """HMAC-SHA256 of ``text`` under the attempts' own derived key.

    A rotated secret gives every name a new key, so the counts start afresh
    (the items under the old key expire within a day): an attacker cannot
    rotate the secret, so this frees nobody from a lock on demand.
    """
    key = signing_keys.derived_key(_ATTEMPTS_KEY_LABEL)
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class Login:
    user_id: str
    username: str
    roles: list
    password_hash: str
    key: dict  # the login item's own key
    logins: int = 0
    deleting: bool = False
    second_factor: bool = False


def _login(item):
    return Login(user_id=item["user_id"]["S"], username=item["username"]["S"],
                 roles=roles_of(item), password_hash=item["password_hash"]["S"],
                 key={"pk": item["pk"]}, logins=dynamo.number(item, "logins") or 0,
                 deleting="deleting" in item, second_factor="second_factor" in item)


def roles_of(item):
    """The roles of a login or profile item, as a list of strings."""
    return [r["S"] for r in item.get("roles", {}).get("L", [])]


def roles_value(roles):
    return {"L": [S(r) for r in roles]}


def _attempts(item):
    return backoff.Attempts(failures=dynamo.number(item, "failures"),
                            locked_until=dynamo.number(item, "locked_until"),
                            expires_at=dynamo.number(item, "expires_at"))


def attempts_of(stale):
    """The attempts record as a refused :meth:`LoginStore.swap_attempts`
    found it (a StaleWrite); None when there was none."""
    item = stale.items.get("attempts")
    return _attempts(item) if item else None


class LoginStore:
    def __init__(self, table):
        self.table = table

    def read_login(self, name):
        """The login of ``name``, as one read of a batch (dynamo.read);
        None for a malformed name, which no user has."""
        return None if name.malformed else dynamo.Read(self.table, name.login_key, _login)

    def read_attempts(self, name):
        return dynamo.Read(self.table, name.attempts_key, _attempts)

    def get_login(self, name):
        """The login of ``name``; None, without a read, for a malformed name."""
        if name.malformed:
            return None
        item = dynamo.call("get_item", TableName=self.table, Key=name.login_key,
                           ConsistentRead=True).get("Item")
        return _login(item) if item else None

    def reread(self, login):
        """``login`` as it is now (None when it is gone)."""
        item = dynamo.call("get_item", TableName=self.table, Key=login.key,
                           ConsistentRead=True).get("Item")
        return _login(item) if item else None

    def get_login_and_attempts(self, name):
        """The login (None for an unknown or malformed name) and the failed
        attempts of ``name``, in one read."""
        if name.malformed:
            return None, dynamo.read(self.read_attempts(name), attempts=6)[0]
        attempts, login = dynamo.read(self.read_attempts(name), self.read_login(name), attempts=6)
        return login, attempts

    def get_attempts(self, name):
        item = dynamo.call("get_item", TableName=self.table, Key=name.attempts_key,
                           ConsistentRead=True).get("Item")
        return _attempts(item) if item else None

    def create(self, user, password_hash):
        """The write of a new user's login, only if its name is free in any
        case (labelled ``username``)."""
        return unit_of_work.put(self.table, {
            **name(user.username).login_key, "user_id": S(user.id),
            "username": S(user.username), "roles": roles_value(user.roles),
            "password_hash": S(password_hash), "logins": N(0),
        }, "attribute_not_exists(pk)", label="username")

    def swap_attempts(self, name, seen, new):
        """The write of ``new`` as the attempts of ``name``, for a
        transaction, only if they are still ``seen`` (None: no record).

        Labelled ``attempts``; when its condition fails, the record as it
        now is comes back in the StaleWrite (see :func:`attempts_of`), so
        the caller decides again without another read. ``failures`` and
        ``expires_at`` identify a record: both are written together by every
        change, and ``locked_until`` follows from them.
        """
        if seen is None:
            condition, expected = "attribute_not_exists(pk)", {}
        else:
            condition = "failures = :seen_failures AND expires_at = :seen_expires"
            expected = {":seen_failures": N(seen.failures),
                        ":seen_expires": N(int(seen.expires_at))}
        return unit_of_work.update(
            self.table, name.attempts_key,
            "SET failures = :f, locked_until = :l, expires_at = :e",
            {":f": N(new.failures), ":l": N(new.locked_until), ":e": N(int(new.expires_at)),
             **expected}, condition=condition, label="attempts", return_old=True)

    def take_back(self, name, counted, before):
        """Put the attempts of ``name`` back from ``counted`` to ``before``
        (None: no record), unless another attempt changed them since (best
        effort: an outage leaves the count one higher)."""
        seen = {":seen_failures": N(counted.failures), ":seen_expires": N(int(counted.expires_at))}
        condition = "failures = :seen_failures AND expires_at = :seen_expires"
        try:
            if before is None:
                dynamo.applied("delete_item", TableName=self.table, Key=name.attempts_key,
                               ConditionExpression=condition, ExpressionAttributeValues=seen)
            else:
                dynamo.applied("update_item", TableName=self.table, Key=name.attempts_key,
                               UpdateExpression="SET failures = :f, locked_until = :l, "
                                                "expires_at = :e",
                               ConditionExpression=condition, ExpressionAttributeValues={
                                   ":f": N(before.failures), ":l": N(before.locked_until),
                                   ":e": N(int(before.expires_at)), **seen})
        except ServiceUnavailable:
            pass  # the count stays one higher

    def forget_attempts(self, name):
        """The delete of the failed attempts, for a transaction."""
        return unit_of_work.delete(self.table, name.attempts_key)

    def unchanged(self, owner):
        """A condition, for a transaction, that the login of ``owner`` (a
        Login, or an Identity, whose name is keyed here) is still its user's
        and that no deletion of it has begun (labelled ``login``).

        Every write of an event is conditional on this (or on a write of
        the login with the same condition): once a deletion has marked the
        login, no event can join the log that the deletion is removing.
        """
        # Not through name(): its attempts key needs the signing secret,
        # which the mailer (a caller of this) may not read.
        key = owner.key if isinstance(owner, Login) else _login_key(
            folded_username(owner.username))
        return unit_of_work.condition_check(
            self.table, key, "user_id = :id AND attribute_not_exists(deleting)",
            {":id": S(owner.user_id)}, label="login")

    def count_login(self, login, now, rehashed=None):
        """Count a login, on condition that the password is still the one
        checked, no deletion has begun, no password change holds logins off
        at ``now``, and no other login counted since ``login`` was read;
        ``rehashed`` replaces the hash (the same password at the configured
        cost) under that condition.

        The counter is what lets another login notice one that committed
        between its listing of the tokens and its own write (the cap).
        """
        values = {":h": S(login.password_hash), ":one": N(1), ":n": N(login.logins),
                  ":now": N(int(now))}
        update = "ADD logins :one"
        if rehashed:
            update, values[":new"] = update + " SET password_hash = :new", S(rehashed)
        return unit_of_work.update(
            self.table, login.key, update, values,
            condition="password_hash = :h AND logins = :n AND attribute_not_exists(deleting) "
                      "AND (attribute_not_exists(fence_until) OR fence_until < :now)",
            label="login")

    def fence(self, login, now, fence_id):
        """Hold new logins off while a password change lists the sessions
        and replaces the hash; False when the password changed since
        ``login`` was read, or a deletion began.

        Logins cannot commit while the fence stands (see
        :meth:`count_login`): they read the login again until it is gone,
        and then find the new password. The fence does not depend on the
        login counter, so any number of logins cannot make the owner's
        change lose. ``fence_id`` names this change's fence, so that only
        its own write (:meth:`set_password`) takes it down; a fence left by
        a change that died expires after FENCE_SECONDS.
        """
        return dynamo.applied(
            "update_item", TableName=self.table, Key=login.key,
            UpdateExpression="SET fence_until = :until, fence_id = :fence",
            ConditionExpression="password_hash = :h AND attribute_not_exists(deleting)",
            ExpressionAttributeValues={":until": N(int(now) + FENCE_SECONDS),
                                       ":fence": S(fence_id), ":h": S(login.password_hash)})

    def unfence(self, login, fence_id):
        """Take the change's fence down without a change (after an outage)."""
        dynamo.applied("update_item", TableName=self.table, Key=login.key,
                       UpdateExpression="REMOVE fence_until, fence_id",
                       ConditionExpression="fence_id = :fence",
                       ExpressionAttributeValues={":fence": S(fence_id)})

    def set_password(self, login, new_hash, fence_id):
        """Replace the hash and take down the fence ``fence_id`` (which must
        still stand: no login committed since it went up)."""
        return unit_of_work.update(
            self.table, login.key, "SET password_hash = :new REMOVE fence_until, fence_id",
            {":new": S(new_hash), ":old": S(login.password_hash), ":fence": S(fence_id)},
            condition="password_hash = :old AND fence_id = :fence "
                      "AND attribute_not_exists(deleting)",
            label="login")

    def set_roles(self, login, roles):
        """The write of ``roles`` to the login, for the transaction that
        writes them to the profile too; only while the item is this user's
        and no deletion has begun, so it never recreates a deleted login."""
        return unit_of_work.update(
            self.table, login.key, "SET #r = :r",
            {":r": roles_value(roles), ":id": S(login.user_id)},
            condition="attribute_exists(pk) AND user_id = :id AND attribute_not_exists(deleting)",
            names={"#r": "roles"}, label="login")  # roles: a reserved word

    def set_second_factor(self, owner, on):
        """The login's mark that the user has a second factor (``on``) or
        none, for the transaction that changes the factors; only while the
        login is the user's and no deletion has begun."""
        key = owner.key if isinstance(owner, Login) else name(owner.username).login_key
        return unit_of_work.update(
            self.table, key, "SET second_factor = :on" if on else "REMOVE second_factor",
            {":id": S(owner.user_id), **({":on": {"BOOL": True}} if on else {})},
            condition="user_id = :id AND attribute_not_exists(deleting)", label="login")

    def mark_deleting(self, login, now):
        """Stop new logins for this user before its tokens are deleted."""
        return dynamo.applied(
            "update_item", TableName=self.table, Key=login.key,
            UpdateExpression="SET deleting = :now", ConditionExpression="password_hash = :h",
            ExpressionAttributeValues={":now": N(int(now)), ":h": S(login.password_hash)})

    def delete(self, login, name):
        """The deletes of the login and the attempts of its ``name``, for the
        transaction that deletes the user: only while the login is this
        user's and marked, so a stale deletion never touches a name taken
        since."""
        return [unit_of_work.delete(self.table, login.key,
                                    condition="attribute_exists(deleting) AND user_id = :id",
                                    values={":id": S(login.user_id)}, label="login"),
                unit_of_work.delete(self.table, name.attempts_key)]
