"""Password hashing with bcrypt, without bcrypt's 72-byte limit.

bcrypt reads at most 72 bytes (bcrypt 5 raises beyond that, older versions
silently truncate), and the contract says every character of a 1024-character
password counts. So the password is first reduced to a fixed 44-byte string:
base64 of HMAC-SHA256 under a constant, service-specific key. base64 keeps
NUL bytes out of bcrypt's input, and the HMAC key keeps these hashes from
matching any plain-SHA-256 dump of the same passwords.
"""
import base64
import gzip
import hashlib
import hmac
import os

import bcrypt

from chalicelib import config

_PREHASH_KEY = b"login-service/bcrypt-prehash/v1"
COMMON_PASSWORDS = os.path.join(os.path.dirname(__file__), "common-passwords.txt.gz")
_dummy_hashes = {}
_common = []


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


def _dummy_hash():
    rounds = config.bcrypt_rounds()
    if rounds not in _dummy_hashes:
        _dummy_hashes[rounds] = bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=rounds))
    return _dummy_hashes[rounds]


def is_common(password):
    """True for one of the most common passwords (any case).

    The list ships with the code (``common-passwords.txt.gz``: the entries of
    8 characters or more among zxcvbn's 30,000 most common passwords; shorter
    ones fail the length rule anyway) and is loaded on first use only, so
    requests that never set a password never pay for it.
    """
    if not _common:
        with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as f:
            _common.append(frozenset(f.read().split("\n")))
    return password.lower() in _common[0]
