"""The items of second factors, in the users table, under keys whose
prefixes the authorizer's role cannot read (its policy allows ``user#*``
only): none of them is ever listed, and none reaches a log.

``factors#<user_id>``   the user's second factors: ``version`` (each change
                        of the set counts one, and is conditional on the
                        count as read), ``totp_secret`` and ``totp_step``
                        (the last time step accepted) once confirmed,
                        ``totp_pending`` and ``pending_wrong`` (the wrong
                        codes it met) until then, ``recovery`` (a set of
                        hashes), and one ``passkey_<id>`` map per passkey
                        (credential_id, public_key, sign_count, name,
                        created_at, last_used_at)
``challenge#<id>``      a WebAuthn challenge: purpose (register, login or
                        mfa), challenge, user_id (none for a passwordless
                        login), expires_at (TTL)
``mfa_token#<sha256>``  the second step of a password login: user_id,
                        username, password (a SHA-256 of the hash it was
                        issued for), description, wrong (codes so far),
                        challenge_id (its passkey's), expires_at (TTL)

Writes for a transaction are labelled ``second_factor``: a StaleWrite
naming it means a code, a token or a challenge was spent by another
request, or the factors changed since they were read.
"""
import hashlib
import re
from collections import namedtuple

from chalicelib import dynamo, unit_of_work
from chalicelib.dynamo import N, S
from chalicelib.terms import MFA_METHODS, MFA_TOKEN_SECONDS, MFA_WRONG_CODES

LABEL = "second_factor"
_PASSKEY = "passkey_"


class Passkey(namedtuple("Passkey", "id credential_id public_key sign_count name created_at "
                                    "last_used_at")):
    __slots__ = ()


class Factors(namedtuple("Factors", "user_id version totp_secret totp_step totp_pending "
                                    "recovery passkeys")):
    """A user's second factors as read; :data:`NONE` when there is no item."""

    __slots__ = ()

    @property
    def any(self):
        """Whether a password login of this user needs a second step."""
        return bool(self.totp_secret or self.passkeys)

    @property
    def methods(self):
        """The ways a second step can be made (terms.MFA_METHODS), in that order."""
        held = {"totp": self.totp_secret, "passkey": self.passkeys, "recovery_code": self.recovery}
        return [method for method in MFA_METHODS if held[method]]

    def passkey(self, credential_id):
        return next((p for p in self.passkeys if p.credential_id == credential_id), None)


def _factors(item):
    passkeys = sorted((Passkey(name[len(_PASSKEY):], m["credential_id"]["S"],
                               bytes(m["public_key"]["B"]), int(m["sign_count"]["N"]),
                               m["name"]["S"], int(m["created_at"]["N"]),
                               dynamo.number(m, "last_used_at"))
                       for name, value in item.items() if name.startswith(_PASSKEY)
                       for m in [value["M"]]), key=lambda p: p.created_at)
    return Factors(item["pk"]["S"].split("#", 1)[1], dynamo.number(item, "version") or 0,
                   dynamo.text(item, "totp_secret"), dynamo.number(item, "totp_step"),
                   dynamo.text(item, "totp_pending"),
                   frozenset(item.get("recovery", {}).get("SS", [])), passkeys)


def none(user_id):
    return Factors(user_id, None, None, None, None, frozenset(), [])


Challenge = namedtuple("Challenge", "id purpose challenge user_id expires_at")
MfaToken = namedtuple("MfaToken", "key user_id username password description wrong "
                                  "challenge_id expires_at")


def recovery_hash(user_id, code):
    """A recovery code as stored: a SHA-256 of the user's id and the code.

    A code holds 80 random bits, so a plain hash is out of reach of a
    dictionary; the user's id keeps two users' equal codes apart. Not the
    signing secret: rolling it must not kill every code.
    """
    plain = re.sub(r"[\s-]", "", code).lower()
    return hashlib.sha256(f"{user_id}:{plain}".encode("utf-8")).hexdigest()


def password_mark(password_hash):
    """What an mfa_token keeps of the password it was issued for: enough to
    tell that the password changed since, and no copy of the hash."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()


def mfa_token_key(token):
    """The key of an mfa_token: only its hash is stored."""
    return {"pk": S("mfa_token#" + hashlib.sha256(token.encode("utf-8")).hexdigest())}


class FactorStore:
    def __init__(self, table):
        self.table = table

    @staticmethod
    def key(user_id):
        return {"pk": S("factors#" + user_id)}

    # --- the factors ------------------------------------------------------

    def read(self, user_id):
        """The factors, as one read of a batch (dynamo.read); None when
        the user has none (see :func:`none`)."""
        return dynamo.Read(self.table, self.key(user_id), _factors)

    def get(self, user_id):
        item = dynamo.call("get_item", TableName=self.table, Key=self.key(user_id),
                           ConsistentRead=True).get("Item")
        return _factors(item) if item else none(user_id)

    def _change(self, seen, set_=(), remove=(), values=None, names=None, condition=None):
        """An update of the set of factors, on condition that nothing
        changed it since ``seen`` was read; it counts one version more."""
        values = {**(values or {}), ":v1": N((seen.version or 0) + 1)}
        if seen.version is None:
            expected = "attribute_not_exists(pk)"
        else:
            expected, values[":v"] = "version = :v", N(seen.version)
        expression = "SET " + ", ".join(("version = :v1",) + tuple(set_))
        if remove:
            expression += " REMOVE " + ", ".join(remove)
        return unit_of_work.update(
            self.table, self.key(seen.user_id), expression, values,
            condition=expected + (f" AND {condition}" if condition else ""), names=names,
            label=LABEL)

    def set_pending(self, seen, secret):
        """A new TOTP secret, pending until a code confirms it (replacing
        any pending one)."""
        return self._change(seen, ["totp_pending = :s", "pending_wrong = :zero"],
                            values={":s": S(secret), ":zero": N(0)})

    def confirm_totp(self, seen, step, hashes):
        """The pending secret confirmed by a code of ``step``, with new
        recovery codes."""
        return self._change(seen, ["totp_secret = :s", "totp_step = :step", "recovery = :r"],
                            ["totp_pending", "pending_wrong"], {":s": S(seen.totp_pending), ":step": N(step),
                                               ":r": {"SS": list(hashes)}},
                            condition="totp_pending = :s")

    def count_pending_wrong(self, seen):
        """One more wrong code for the pending secret; the secret goes with
        the last one allowed (setup starts over, with the password)."""
        key, values = self.key(seen.user_id), {":s": S(seen.totp_pending)}
        if not dynamo.applied("update_item", TableName=self.table, Key=key,
                              UpdateExpression="ADD pending_wrong :one",
                              ConditionExpression="totp_pending = :s AND pending_wrong < :last",
                              ExpressionAttributeValues={**values, ":one": N(1),
                                                         ":last": N(MFA_WRONG_CODES - 1)}):
            # (Not applied: replaced or confirmed meanwhile, which is as good.)
            dynamo.applied("update_item", TableName=self.table, Key=key,
                           UpdateExpression="REMOVE totp_pending, pending_wrong",
                           ConditionExpression="totp_pending = :s",
                           ExpressionAttributeValues=values)

    def disable_totp(self, seen, step):
        """TOTP and its recovery codes gone, by a code of ``step`` (spent)."""
        return self._change(seen, remove=["totp_secret", "totp_step", "recovery"],
                            values={":step": N(step)}, condition="totp_step < :step")

    def renew_recovery(self, seen, step, hashes):
        """New recovery codes, the old ones dead, by a code of ``step`` (spent)."""
        return self._change(seen, ["totp_step = :step", "recovery = :r"],
                            values={":step": N(step), ":r": {"SS": list(hashes)}},
                            condition="totp_step < :step")

    def add_passkey(self, seen, passkey):
        value = {"credential_id": S(passkey.credential_id), "public_key": {"B": passkey.public_key},
                 "sign_count": N(passkey.sign_count), "name": S(passkey.name),
                 "created_at": N(passkey.created_at)}
        return self._change(seen, ["#p = :p"], values={":p": {"M": value}},
                            names={"#p": _PASSKEY + passkey.id})

    def remove_passkey(self, seen, passkey_id):
        return self._change(seen, remove=["#p"], names={"#p": _PASSKEY + passkey_id},
                            condition="attribute_exists(#p)")

    def spend_step(self, factors, step):
        """A TOTP code of ``step`` used: it and every earlier step are
        refused afterwards (the condition makes two racing uses one)."""
        return unit_of_work.update(
            self.table, self.key(factors.user_id), "SET totp_step = :step",
            {":step": N(step), ":s": S(factors.totp_secret)},
            condition="totp_secret = :s AND totp_step < :step", label=LABEL)

    def spend_recovery(self, user_id, code_hash):
        """A recovery code used, only if it was still unused."""
        return unit_of_work.update(
            self.table, self.key(user_id), "DELETE recovery :h", {":h": {"SS": [code_hash]},
                                                                  ":c": S(code_hash)},
            condition="contains(recovery, :c)", label=LABEL)

    def count_use(self, user_id, passkey, sign_count, now):
        """A passkey used: its signature counter as the authenticator gave
        it, on condition that no other use moved it meanwhile (a cloned
        authenticator racing the real one loses)."""
        return unit_of_work.update(
            self.table, self.key(user_id), "SET #p.sign_count = :n, #p.last_used_at = :now",
            {":n": N(sign_count), ":old": N(passkey.sign_count), ":now": N(int(now))},
            condition="#p.sign_count = :old", names={"#p": _PASSKEY + passkey.id}, label=LABEL)

    def delete(self, user_id):
        """The delete of every second factor of the user, for a transaction."""
        return unit_of_work.delete(self.table, self.key(user_id))

    # --- WebAuthn challenges ----------------------------------------------

    def put_challenge(self, challenge):
        item = {"pk": S("challenge#" + challenge.id), "purpose": S(challenge.purpose),
                "challenge": {"B": challenge.challenge},
                "expires_at": N(int(challenge.expires_at))}
        if challenge.user_id:
            item["user_id"] = S(challenge.user_id)
        dynamo.call("put_item", TableName=self.table, Item=item,
                    ConditionExpression="attribute_not_exists(pk)")

    def take_challenge(self, challenge_id):
        """The challenge, deleted as it is read, so it works once; None when
        there is none (unknown, or taken already). Expiry is the caller's
        to check: DynamoDB deletes expired items days late."""
        try:
            item = dynamo.call("delete_item", TableName=self.table,
                               Key={"pk": S("challenge#" + challenge_id)},
                               ConditionExpression="attribute_exists(pk)",
                               ReturnValues="ALL_OLD")["Attributes"]
        except dynamo.ConditionFailed:
            return None
        return Challenge(challenge_id, item["purpose"]["S"], bytes(item["challenge"]["B"]),
                         dynamo.text(item, "user_id"), int(item["expires_at"]["N"]))

    # --- the second step of a password login --------------------------------

    def new_mfa_token(self, token, login, description, now):
        """The write of a new mfa_token (its hash) for ``login``."""
        item = {**mfa_token_key(token), "user_id": S(login.user_id),
                "username": S(login.username), "password": S(password_mark(login.password_hash)),
                "wrong": N(0),
                "expires_at": N(int(now) + MFA_TOKEN_SECONDS)}
        if description is not None:
            item["description"] = S(description)
        return unit_of_work.put(self.table, item, "attribute_not_exists(pk)")

    def get_mfa_token(self, token):
        """The mfa_token as stored, or None; expiry is the caller's to check."""
        key = mfa_token_key(token)
        item = dynamo.call("get_item", TableName=self.table, Key=key,
                           ConsistentRead=True).get("Item")
        if item is None:
            return None
        return MfaToken(key, item["user_id"]["S"], item["username"]["S"], item["password"]["S"],
                        dynamo.text(item, "description"), int(item["wrong"]["N"]),
                        dynamo.text(item, "challenge_id"), int(item["expires_at"]["N"]))

    def spend_mfa_token(self, mfa):
        """The mfa_token used up by a completed login, for its transaction:
        only if no other request spent it or counted a wrong code since."""
        return unit_of_work.delete(self.table, mfa.key,
                                   condition="attribute_exists(pk) AND wrong = :w",
                                   values={":w": N(mfa.wrong)}, label=LABEL)

    def count_wrong(self, mfa):
        """One more wrong code; the token dies with the last one it allows."""
        if not dynamo.applied("update_item", TableName=self.table, Key=mfa.key,
                              UpdateExpression="ADD wrong :one",
                              ConditionExpression="attribute_exists(pk) AND wrong < :last",
                              ExpressionAttributeValues={":one": N(1),
                                                         ":last": N(MFA_WRONG_CODES - 1)}):
            dynamo.call("delete_item", TableName=self.table, Key=mfa.key)

    def attach_challenge(self, mfa, challenge_id):
        """The passkey challenge of this second step (a newer one replaces it)."""
        return dynamo.applied("update_item", TableName=self.table, Key=mfa.key,
                              UpdateExpression="SET challenge_id = :c",
                              ConditionExpression="attribute_exists(pk)",
                              ExpressionAttributeValues={":c": S(challenge_id)})

