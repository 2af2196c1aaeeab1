"""The users table, and the profile and email items in it.

One table, keyed by ``pk``, holding ten kinds of item; each store owns its
own:

``user#<id>``           the profile: id, username, email, email_verified,
                        roles, created_at (this store)
``email#<casefolded>``  user_id: the email's uniqueness guard (this store)
``username#<lower>``    the login (chalicelib/login_store.py)
``attempts#...``        failed attempts at a name's password (login_store.py)
``client#<id>``         an introspection client (chalicelib/client_store.py)
``links#<user id>``     the links sent by mail (chalicelib/link_store.py)
``mailrate#<address>``  what went to an address lately (link_store.py)
``factors#``, ``challenge#``, ``mfa_token#``  second factors
                        (chalicelib/factor_store.py)

The username and email items are the uniqueness guards: signup writes the
profile, the login and the email in one transaction, each on condition that
its key is new (the writes are labelled ``user``, ``username`` and
``email``, so a refused signup can say which one was taken), and two racing
signups cannot both win (a GSI could not promise that: it is eventually
consistent).

Roles are decided on the profile: /users/me and every admin request read
it there, so granting or revoking takes effect on the next request. The
login keeps a copy, always written in the same transaction. Roles are a
list of strings here, a DynamoDB list of strings in both items.
"""
from dataclasses import dataclass, field

from chalicelib import dynamo, unit_of_work
from chalicelib.dynamo import S
from chalicelib.login_store import roles_of, roles_value


def folded_email(email):
    """An address as its accounts and limits know it: the part before @
    casefolded, the domain in lower case and in its ASCII form (an
    internationalised domain and its xn-- form are one domain; signup has
    already checked that it encodes, see schemas.py)."""
    local, _, domain = email.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass  # not IDNA (never past signup): the name as it is
    return local.casefold() + "@" + domain.lower()


@dataclass
class User:
    id: str
    username: str
    email: str
    created_at: str
    roles: list = field(default_factory=list)
    # Proven to be the user's by a link sent to it (or by an operator).
    email_verified: bool = False


def _user(item):
    return User(id=item["id"]["S"], username=item["username"]["S"], email=item["email"]["S"],
                created_at=item["created_at"]["S"], roles=roles_of(item),
                email_verified=item.get("email_verified", {}).get("BOOL", False))


class UserStore:
    def __init__(self, table):
        self.table = table

    @staticmethod
    def user_key(user_id):
        return {"pk": S("user#" + user_id)}

    @staticmethod
    def email_key(email):
        return {"pk": S("email#" + folded_email(email))}

    def create(self, user):
        """The writes of a new user's profile and email, each only if its key
        is new (labelled ``user`` and ``email``); the login is login_store's."""
        new = "attribute_not_exists(pk)"
        return [
            unit_of_work.put(self.table, {
                **self.user_key(user.id), "id": S(user.id), "username": S(user.username),
                "email": S(user.email), "roles": roles_value(user.roles),
                "created_at": S(user.created_at), "email_verified": {"BOOL": user.email_verified},
            }, new, label="user"),
            unit_of_work.put(self.table, {**self.email_key(user.email), "user_id": S(user.id)},
                             new, label="email"),
        ]

    def get_user(self, user_id):
        item = dynamo.call(
            "get_item", TableName=self.table, Key=self.user_key(user_id), ConsistentRead=True
        ).get("Item")
        return _user(item) if item else None

    def read_user(self, user_id):
        """The profile (None when the user is gone), as one read of a batch."""
        return dynamo.Read(self.table, self.user_key(user_id), _user)

    def owner_of(self, email):
        """The id of the user whose address ``email`` is (any case), or None."""
        item = dynamo.call("get_item", TableName=self.table, Key=self.email_key(email),
                           ConsistentRead=True).get("Item")
        return item["user_id"]["S"] if item else None

    def set_verified(self, user):
        """The write marking ``user``'s address verified, only while it is
        still the address read (labelled ``user``)."""
        return unit_of_work.update(
            self.table, self.user_key(user.id), "SET email_verified = :yes",
            {":yes": {"BOOL": True}, ":id": S(user.id), ":email": S(user.email)},
            condition="id = :id AND email = :email", label="user")

    def change_email(self, user, new_email):
        """The writes moving ``user`` from its address to ``new_email``,
        verified: only while the old one is still its address (labelled
        ``user``) and the new one is free (labelled ``email``)."""
        profile = unit_of_work.update(
            self.table, self.user_key(user.id), "SET email = :new, email_verified = :yes",
            {":new": S(new_email), ":yes": {"BOOL": True}, ":id": S(user.id),
             ":old": S(user.email)},
            condition="id = :id AND email = :old", label="user")
        if folded_email(new_email) == folded_email(user.email):
            return [profile]  # the same address, spelt in another case: one guard
        return [
            profile,
            unit_of_work.delete(self.table, self.email_key(user.email),
                                condition="user_id = :id", values={":id": S(user.id)},
                                label="user"),
            unit_of_work.put(self.table, {**self.email_key(new_email), "user_id": S(user.id)},
                             "attribute_not_exists(pk)", label="email"),
        ]

    def as_read(self, user):
        """A condition, for a transaction, that ``user``'s address is still
        the one read, verified or not as read (labelled ``profile``): a
        link decided on an address must not go out after the account left
        it."""
        return unit_of_work.condition_check(
            self.table, self.user_key(user.id), "email = :email AND email_verified = :v",
            {":email": S(user.email), ":v": {"BOOL": user.email_verified}}, label="profile")

    def email_free(self, email):
        """A condition, for a transaction, that ``email`` is nobody's
        address (labelled ``email``)."""
        return unit_of_work.condition_check(self.table, self.email_key(email),
                                            "attribute_not_exists(pk)", None, label="email")

    def read_roles(self, user_id):
        """The user's current roles (None when the user is gone), as one
        read of a batch (dynamo.read)."""
        return dynamo.Read(self.table, self.user_key(user_id), roles_of)

    def set_roles(self, user_id, roles):
        """The write of ``roles`` to the profile, for the transaction that
        writes them to the login too; only while the profile is this user's,
        so it never recreates, as a bare item, a user deleted meanwhile."""
        return unit_of_work.update(
            self.table, self.user_key(user_id), "SET #r = :r",
            {":r": roles_value(roles), ":id": S(user_id)},
            condition="attribute_exists(pk) AND id = :id", names={"#r": "roles"}, label="user")

    def delete(self, user_id, email):
        """The deletes of the profile and the email guard, for the
        transaction that deletes the user."""
        return [unit_of_work.delete(self.table, self.user_key(user_id))] + (
            [unit_of_work.delete(self.table, self.email_key(email))] if email else [])
