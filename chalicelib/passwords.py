"""Password hashing with bcrypt, without bcrypt's 72-byte limit.

bcrypt reads at most 72 bytes (bcrypt 5 raises beyond that, older versions
silently truncate), and the contract says every character of a 1024-character
password counts. So the password is first reduced to a fixed 44-byte string:
base64 of HMAC-SHA256 under a constant, service-specific key. base64 keeps
NUL bytes out of bcrypt's input, and the HMAC key keeps these hashes from
matching any plain-SHA-256 dump of the same passwords.
"""
import base64
import functools
import gzip
import hashlib
import hmac
import os

import bcrypt

from chalicelib import config

# A fixed key, not the service's name: every stored hash depends on it.
_PREHASH_KEY = b"login-service/bcrypt-prehash/v1"
COMMON_PASSWORDS = os.path.join(os.path.dirname(__file__), "common-passwords.txt.gz")
# bcrypt writes its salt and checksum in base64 with an alphabet of its own.
_TO_BCRYPT_ALPHABET = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _prehash(password):
    digest = hmac.new(_PREHASH_KEY, password.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest)


def hash_password(password):
    salt = bcrypt.gensalt(rounds=config.bcrypt_rounds())
    return bcrypt.hashpw(_prehash(password), salt).decode("ascii")


def verify(password, stored_hash):
    """True when ``password`` matches; does one full bcrypt either way.

    With no stored hash (unknown user) it checks against a dummy hash of the
    configured cost, so the answer takes as long as for a wrong password.
    """
    if stored_hash is None:
        bcrypt.checkpw(_prehash(password), _dummy_hash())
        return False
    return bcrypt.checkpw(_prehash(password), stored_hash.encode("ascii"))


def outdated(stored_hash):
    """True when ``stored_hash`` has another bcrypt cost than the configured one.

    A wrong password for such a user takes another time than an unknown
    name (checked at the configured cost), so a successful login rehashes
    it. The cost is the hash's second field: ``$2b$12$...``.
    """
    return int(stored_hash.split("$")[2]) != config.bcrypt_rounds()


def _bcrypt_base64(size):
    # Standard base64 leaves the spare bits of the last character zero, as
    # bcrypt requires: a salt with them set is refused ("Invalid salt").
    return base64.b64encode(os.urandom(size)).rstrip(b"=").translate(_TO_BCRYPT_ALPHABET)


def _dummy_hash():
    """A well-formed bcrypt hash of the configured cost that matches nothing.

    Random salt and checksum, written out rather than computed: making it
    costs no bcrypt run, so even the first unknown user of a fresh instance
    costs exactly the one check that a wrong password costs, and no cold
    start pays for it. checkpw does the full work of the cost it names, then
    compares with a checksum that no password yields (2^-184 odds).
    """
    return b"$2b$%02d$" % config.bcrypt_rounds() + _bcrypt_base64(16) + _bcrypt_base64(23)


def is_common(password):
    """True for one of the most common passwords (any case).

    The list ships with the code (``common-passwords.txt.gz``: the entries of
    8 characters or more among zxcvbn's 30,000 most common passwords; shorter
    ones fail the length rule anyway) and is loaded on first use only, so
    requests that never set a password never pay for it.
    """
    return password.lower() in _common_passwords()


@functools.cache
def _common_passwords():
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as f:
        return frozenset(f.read().split("\n"))
