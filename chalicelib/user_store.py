"""The users table.

One table, keyed by ``pk``, holding five kinds of item:

``user#<id>``           the profile: id, username, email, roles, created_at
``username#<lower>``    the login: user_id, username, roles, password_hash,
                        and ``deleting`` while an account deletion runs
``email#<casefolded>``  user_id
``attempts#<hmac>``     attempts at the password of a username (any case):
                        failures, locked_until, expires_at (also the TTL)
``attempts#malformed#<hmac>``  the same for a name that breaks the username
                        rule, hashed exactly as typed: a lookalike such as
                        a Kelvin sign for ``k`` never shares a real user's
``client#<id>``         an introspection client (chalicelib/client_store.py)

An attempts key is an HMAC of the name under a key derived from the
signing secret, never a plain hash: people type passwords into the username
field, and a table export must not be open to a dictionary attack on them.

The username and email items are the uniqueness guards: signup writes all
three in one transaction, each on condition that its key is new (the
writes are labelled ``username`` and ``email``, so a refused signup can say
which one was taken), and two racing signups cannot both win (a GSI could
not promise that: it is eventually consistent). The password hash lives on the login item so that a
login needs one read to find and check a user.

Roles are decided on the profile: /users/me and every admin request read
it there, so granting or revoking takes effect on the next request. The
login keeps a copy, always written in the same transaction. Roles are a
list of strings here, a DynamoDB list of strings in both items.

Writes that belong in a transaction are returned as writes (dynamo.Write)
for the caller's Transaction: the store keeps the items' shapes and
conditions, the caller decides what goes together.
"""
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field

from chalicelib import backoff, dynamo, signing_keys
from chalicelib.dynamo import N, S
from chalicelib.rules import folded_username

# A user's id: a random UUID in its canonical, lower-case text form.
USER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_user_id():
    return str(uuid.uuid4())


@dataclass
class User:
    id: str
    username: str
    email: str
    created_at: str
    roles: list = field(default_factory=list)


@dataclass
class Login:
    user_id: str
    username: str
    roles: list
    password_hash: str
    logins: int = 0
    deleting: bool = False


def _login(item):
    return Login(user_id=item["user_id"]["S"], username=item["username"]["S"],
                 roles=_roles(item), password_hash=item["password_hash"]["S"],
                 logins=dynamo.number(item, "logins") or 0, deleting="deleting" in item)


def _roles(item):
    return [r["S"] for r in item.get("roles", {}).get("L", [])]


def _roles_value(roles):
    return {"L": [S(r) for r in roles]}


def _attempts(item):
    if not item:
        return None
    return backoff.Attempts(failures=dynamo.number(item, "failures"),
                            locked_until=dynamo.number(item, "locked_until"),
                            expires_at=dynamo.number(item, "expires_at"))


_ATTEMPTS_KEY_LABEL = b"login-service/attempts-key/v1"


def _keyed(text):
    """HMAC-SHA256 of ``text`` under the attempts' own derived key.

    A rotated secret gives every name a new key, so the counts start afresh
    (the items under the old key expire within a day): an attacker cannot
    rotate the secret, so this frees nobody from a lock on demand.
    """
    key = signing_keys.derived_key(_ATTEMPTS_KEY_LABEL)
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def attempts_of(stale):
    """The attempts record as a refused :meth:`UserStore.swap_attempts`
    found it (a StaleWrite); None when there was none."""
    return _attempts(stale.items.get("attempts"))


class UserStore:
    def __init__(self, table):
        self.table = table

    @staticmethod
    def user_key(user_id):
        return {"pk": S("user#" + user_id)}

    @staticmethod
    def login_key(username):
        folded = folded_username(username)
        if folded is None:
            raise ValueError("not a username")  # callers check the rule first
        return {"pk": S("username#" + folded)}

    @staticmethod
    def email_key(email):
        # An internationalised domain and its xn-- form are one domain: the
        # key holds the ASCII form (signup has already checked that it
        # encodes, see schemas.py).
        local, _, domain = email.rpartition("@")
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # not IDNA (never past signup): the name as it is
        return {"pk": S("email#" + local.casefold() + "@" + domain.lower())}

    @staticmethod
    def attempts_key(username):
        # Hashed: a login may name any string, and keys are limited in size.
        # The two spaces differ by prefix, so a lookalike never meets a name.
        folded = folded_username(username)
        if folded is None:
            return {"pk": S("attempts#malformed#" + _keyed(username))}
        return {"pk": S("attempts#" + _keyed(folded))}

    def create(self, user, password_hash):
        """The writes of a new user: its profile, login and email, each only
        if its key is new (labelled ``user``, ``username`` and ``email``)."""
        roles = _roles_value(user.roles)
        new = "attribute_not_exists(pk)"
        return [
            dynamo.put(self.table, {
                **self.user_key(user.id), "id": S(user.id), "username": S(user.username),
                "email": S(user.email), "roles": roles, "created_at": S(user.created_at),
            }, new, label="user"),
            dynamo.put(self.table, {
                **self.login_key(user.username), "user_id": S(user.id),
                "username": S(user.username), "roles": roles,
                "password_hash": S(password_hash), "logins": N(0),
            }, new, label="username"),
            dynamo.put(self.table, {**self.email_key(user.email), "user_id": S(user.id)}, new,
                       label="email"),
        ]

    def get_user(self, user_id):
        item = dynamo.call(
            "get_item", TableName=self.table, Key=self.user_key(user_id), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return User(id=item["id"]["S"], username=item["username"]["S"], email=item["email"]["S"],
                    created_at=item["created_at"]["S"], roles=_roles(item))

    def read_roles(self, user_id):
        """The user's current roles (None when the user is gone), as one
        read of a batch (stores.read)."""
        return dynamo.Read(self.table, self.user_key(user_id), _roles)

    def get_login(self, username):
        """The login of ``username`` (any case); None, without a read, for a
        name that breaks the username rule and so cannot exist."""
        if folded_username(username) is None:
            return None
        item = dynamo.call(
            "get_item", TableName=self.table, Key=self.login_key(username), ConsistentRead=True
        ).get("Item")
        return _login(item) if item else None

    def get_login_and_attempts(self, username):
        """The login (None for an unknown or malformed name) and the failed
        attempts of ``username``, in one read."""
        keys = [self.attempts_key(username)]
        keys += [self.login_key(username)] if folded_username(username) is not None else []
        login = attempts = None
        for item in dynamo.batch_get(self.table, keys):
            if item["pk"]["S"].startswith("attempts#"):
                attempts = _attempts(item)
            else:
                login = _login(item)
        return login, attempts

    def get_attempts(self, username):
        return _attempts(dynamo.call("get_item", TableName=self.table,
                                     Key=self.attempts_key(username),
                                     ConsistentRead=True).get("Item"))

    def swap_attempts(self, username, seen, new):
        """The write of ``new`` as the attempts of ``username``, for a
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
        return dynamo.update(
            self.table, self.attempts_key(username),
            "SET failures = :f, locked_until = :l, expires_at = :e",
            {":f": N(new.failures), ":l": N(new.locked_until), ":e": N(int(new.expires_at)),
             **expected}, condition=condition, label="attempts", return_old=True)

    def unchanged(self, login):
        """A condition, for a transaction, that ``login`` is still this user's
        and that no deletion of it has begun (labelled ``login``).

        Every write of an event is conditional on this (or on a write of
        the login with the same condition): once a deletion has marked the
        login, no event can join the log that the deletion is removing.
        """
        return dynamo.condition_check(
            self.table, self.login_key(login.username),
            "user_id = :id AND attribute_not_exists(deleting)", {":id": S(login.user_id)},
            label="login")

    def forget_attempts(self, username):
        """The delete of the failed attempts, for a transaction."""
        return dynamo.delete(self.table, self.attempts_key(username))

    # Writes for transactions that may span the tables.

    def count_login(self, login, rehashed=None):
        """Count a login, on condition that the password is still the one
        checked, no deletion has begun and no other login counted since
        ``login`` was read; ``rehashed`` replaces the hash (the same password
        at the configured cost) under that condition.

        The counter is what lets a password change, or another login, notice
        a login that committed between its listing of the tokens and its own
        write.
        """
        values = {":h": S(login.password_hash), ":one": N(1), ":n": N(login.logins)}
        update = "ADD logins :one"
        if rehashed:
            update, values[":new"] = update + " SET password_hash = :new", S(rehashed)
        return dynamo.update(
            self.table, self.login_key(login.username), update, values,
            condition="password_hash = :h AND logins = :n AND attribute_not_exists(deleting)",
            label="login")

    def set_password(self, login, new_hash):
        """Replace the hash, on condition that nothing logged in meanwhile."""
        return dynamo.update(
            self.table, self.login_key(login.username), "SET password_hash = :new",
            {":new": S(new_hash), ":old": S(login.password_hash), ":n": N(login.logins)},
            condition="password_hash = :old AND logins = :n AND attribute_not_exists(deleting)",
            label="login")

    def mark_deleting(self, login, now):
        """Stop new logins for this user before its tokens are deleted."""
        try:
            dynamo.call(
                "update_item", TableName=self.table, Key=self.login_key(login.username),
                UpdateExpression="SET deleting = :now",
                ConditionExpression="password_hash = :h",
                ExpressionAttributeValues={":now": N(int(now)), ":h": S(login.password_hash)},
            )
        except dynamo.ConditionFailed:
            return False
        return True

    def delete_all(self, login, email):
        """The deletes of every item of the user, for one transaction.

        The transaction goes through only while the login is this user's
        and marked: a stale deletion never touches a name taken since.
        """
        keys = [self.user_key(login.user_id), self.attempts_key(login.username)]
        keys += [self.email_key(email)] if email else []
        return [dynamo.delete(self.table, self.login_key(login.username),
                              condition="attribute_exists(deleting) AND user_id = :id",
                              values={":id": S(login.user_id)}, label="login")] + [
            dynamo.delete(self.table, key) for key in keys]

    def get_roles_and_login(self, user_id, username):
        """The current roles of user ``user_id`` (None when it is gone) and
        the login of ``username`` (None for an unknown or malformed name), in
        one strongly consistent read."""
        keys = [self.user_key(user_id)]
        keys += [self.login_key(username)] if folded_username(username) is not None else []
        roles = login = None
        for item in dynamo.batch_get(self.table, keys):
            if item["pk"]["S"].startswith("user#"):
                roles = _roles(item)
            else:
                login = _login(item)
        return roles, login

    def set_roles(self, login, roles):
        """The writes of ``roles`` to the profile and the login, which go
        in one transaction.

        Each write is conditional on its item still being this user's and
        on no deletion having begun: an update never recreates, as a bare
        item, a user deleted since ``login`` was read.
        """
        values = {":r": _roles_value(roles), ":id": S(login.user_id)}
        names = {"#r": "roles"}  # a reserved word
        return [
            dynamo.update(self.table, self.user_key(login.user_id), "SET #r = :r", values,
                          condition="attribute_exists(pk) AND id = :id", names=names,
                          label="user"),
            dynamo.update(self.table, self.login_key(login.username), "SET #r = :r", values,
                          condition="attribute_exists(pk) AND user_id = :id "
                                    "AND attribute_not_exists(deleting)",
                          names=names, label="login"),
        ]
