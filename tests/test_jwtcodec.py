"""The token codec: what decode() accepts, and everything it refuses.

decode() is the first gate of every request: whatever it lets through is
looked up in DynamoDB, so anything malformed must stop here as InvalidToken,
never as a KeyError or TypeError that only a catch-all would hide.
"""
import base64
import hashlib
import hmac
import json

import jwt
import pytest

from chalicelib import jwtcodec
from conftest import SECRET

NOW = 1_800_000_000
SKEW = 5  # seconds a token's iat or nbf may be ahead of our clock (docs/security.md)
SUB = "0b6c3a9e-3f5a-4c1e-9d2b-7a8e4f6c1d20"
JTI = "0189a3c4d5e6f7a1b2c3d4e5"
CLAIMS = {"sub": SUB, "jti": JTI, "iat": NOW - 60, "exp": NOW + 3600}
MISSING = object()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def our_kid():
    return jwt.get_unverified_header(jwtcodec.encode(SUB, JTI, NOW, NOW + 1))["kid"]


def sign(claims=None, key=SECRET, **header):
    """A token signed with ``key`` (ours by default), built by hand so that
    any header or claim can be put in, even ones PyJWT would not write."""
    head = {"alg": "HS256", "typ": "JWT", "kid": our_kid(), **header}
    head = {name: value for name, value in head.items() if value is not MISSING}
    body = {name: value for name, value in (claims or CLAIMS).items() if value is not MISSING}
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}"
    mac = hmac.new(key.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def token_with(**changes):
    return sign({**CLAIMS, **changes})


def refused(token, now=NOW):
    with pytest.raises(jwtcodec.InvalidToken):
        jwtcodec.decode(token, now)
    return True


# What is accepted

def test_a_token_decodes_to_the_claims_it_was_issued_with():
    token = jwtcodec.encode(SUB, JTI, NOW - 60, NOW + 3600)
    assert jwtcodec.decode(token, NOW) == CLAIMS


def test_a_token_names_its_key_and_the_one_algorithm():
    header = jwt.get_unverified_header(jwtcodec.encode(SUB, JTI, NOW, NOW + 1))
    assert header == {"alg": "HS256", "typ": "JWT", "kid": our_kid()}


def test_a_token_signed_with_the_previous_secret_is_still_accepted(monkeypatch):
    old = jwtcodec.encode(SUB, JTI, NOW - 60, NOW + 3600)
    monkeypatch.setenv("JWT_PREVIOUS_SECRET", SECRET)
    monkeypatch.setenv("JWT_SECRET", "the-next-secret-" + "fedcba9876543210" * 4)
    assert jwtcodec.decode(old, NOW)["jti"] == JTI


def test_the_kid_of_a_secret_is_the_same_in_every_version():
    """Tokens issued before a deploy name this kid; if the derivation
    changed, the new version would refuse them all and log everyone out."""
    assert our_kid() == "CcwuA0W_Z4Sa"


def test_a_new_secret_gets_a_new_kid(monkeypatch):
    before = our_kid()
    monkeypatch.setenv("JWT_SECRET", "the-next-secret-" + "fedcba9876543210" * 4)
    assert our_kid() != before


def test_a_token_is_judged_by_the_given_clock_not_the_machines():
    """Long expired by the machine's clock, valid at the time given."""
    assert jwtcodec.decode(jwtcodec.encode(SUB, JTI, 1000, 2000), 1500)["exp"] == 2000


def test_a_token_from_the_far_future_is_valid_at_its_own_time():
    """Issued and not-before far ahead of the machine's clock, valid at that time."""
    later = 4_000_000_000
    token = sign({**CLAIMS, "iat": later, "nbf": later, "exp": later + 60})
    assert jwtcodec.decode(token, later)["iat"] == later


# Expiry: a token lives until, not including, its exp

def test_a_token_is_valid_up_to_its_expiry():
    assert jwtcodec.decode(token_with(exp=NOW + 1), NOW + 0.999)["exp"] == NOW + 1


def test_a_token_is_refused_at_the_second_it_expires():
    assert refused(token_with(exp=NOW), now=NOW)


def test_an_expired_token_is_refused():
    assert refused(token_with(exp=NOW - 1), now=NOW)


# Clock skew: iat and nbf may be up to SKEW seconds ahead of our clock

def test_a_token_issued_exactly_at_the_skew_limit_is_accepted():
    assert jwtcodec.decode(token_with(iat=NOW + SKEW), NOW)["iat"] == NOW + SKEW


def test_a_token_issued_one_second_past_the_skew_limit_is_refused():
    assert refused(token_with(iat=NOW + SKEW + 1), now=NOW)


def test_a_token_with_nbf_in_the_past_is_accepted():
    assert jwtcodec.decode(token_with(nbf=NOW - 60), NOW)["nbf"] == NOW - 60


def test_a_token_with_nbf_exactly_at_the_skew_limit_is_accepted():
    assert jwtcodec.decode(token_with(nbf=NOW + SKEW), NOW)["nbf"] == NOW + SKEW


def test_a_token_with_nbf_one_second_past_the_skew_limit_is_refused():
    assert refused(token_with(nbf=NOW + SKEW + 1), now=NOW)


def test_a_token_not_valid_for_another_hour_is_refused():
    assert refused(token_with(nbf=NOW + 3600), now=NOW)


# Claims of the wrong type or shape: refused, whichever one it is

@pytest.mark.parametrize("claim", ["sub", "jti", "iat", "exp"])
def test_each_required_claim_is_required(claim):
    assert refused(token_with(**{claim: MISSING}))


@pytest.mark.parametrize("claim", ["sub", "jti", "iat", "exp", "nbf"])
def test_a_null_claim_is_refused(claim):
    assert refused(token_with(**{claim: None}))


@pytest.mark.parametrize("claim,value", [
    ("exp", NOW + 3600.5), ("iat", NOW - 60.5), ("nbf", NOW - 60.5),
    ("exp", float(NOW + 3600)), ("iat", float(NOW - 60)),
])
def test_a_fractional_or_float_time_is_refused(claim, value):
    """Our tokens carry whole seconds; a float is a token we did not write."""
    assert refused(token_with(**{claim: value}))


@pytest.mark.parametrize("claim,value", [
    ("exp", str(NOW + 3600)), ("iat", str(NOW - 60)), ("nbf", str(NOW - 60)),
    ("exp", [NOW + 3600]), ("iat", {"at": NOW - 60}),
])
def test_a_time_that_is_not_a_number_is_refused(claim, value):
    assert refused(token_with(**{claim: value}))


@pytest.mark.parametrize("claim", ["iat", "nbf"])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_time_is_refused(claim, value):
    """JSON true is not the number 1, though Python would compare it as one."""
    assert refused(token_with(**{claim: value}))


@pytest.mark.parametrize("claim,value", [
    ("sub", 42), ("jti", 42), ("sub", [SUB]), ("jti", [JTI]), ("sub", {"id": SUB}),
    ("jti", True),
])
def test_an_id_that_is_not_a_string_is_refused(claim, value):
    assert refused(token_with(**{claim: value}))


@pytest.mark.parametrize("claim,value", [
    ("sub", ""), ("jti", ""),
    ("sub", SUB.upper()), ("sub", SUB + "\n"), ("sub", "\ud800"), ("sub", "x" * 1200),
    ("jti", JTI[:-1]), ("jti", JTI + "0"), ("jti", JTI.upper()), ("jti", "x" * 1200),
])
def test_an_id_we_never_issue_is_refused(claim, value):
    """A key DynamoDB would reject (empty, a lone surrogate, too long) or
    one that names no token of ours: refused before it reaches a lookup."""
    assert refused(token_with(**{claim: value}))


# The header: only our kid, only HS256

def test_a_token_without_a_kid_is_refused():
    assert refused(sign(kid=MISSING))


def test_a_token_with_an_unknown_kid_is_refused():
    assert refused(sign(kid="not-ours"))


@pytest.mark.parametrize("kid", [["k"], {"k": 1}, 7, None, True])
def test_a_kid_that_is_not_a_string_is_refused(kid):
    assert refused(sign(kid=kid))


def test_a_list_of_our_own_kid_is_refused():
    assert refused(sign(kid=[our_kid()]))


def test_a_token_signed_with_another_key_is_refused():
    assert refused(sign(key="another-secret-" + "0123456789abcdef" * 4))


@pytest.mark.parametrize("alg", ["HS512", "none", "RS256"])
def test_an_algorithm_other_than_hs256_is_refused(alg):
    assert refused(sign(alg=alg))


# The envelope: size and alphabet

def test_a_token_of_the_largest_size_is_read():
    token = padded_to(jwtcodec.MAX_TOKEN_LENGTH)
    assert jwtcodec.decode(token, NOW)["sub"] == SUB


def test_a_token_one_character_over_the_largest_size_is_refused():
    assert refused(padded_to(jwtcodec.MAX_TOKEN_LENGTH + 1))


@pytest.mark.parametrize("token", ["", None])
def test_no_token_is_refused(token):
    assert refused(token)


def test_a_token_with_a_non_ascii_character_is_refused():
    assert refused(sign() + "é")


def padded_to(length):
    """A valid token of exactly ``length`` characters: claims and header
    padded (base64 skips some lengths, so both are tried)."""
    for pad in range(length):
        for extra in range(3):
            token = sign({**CLAIMS, "pad": "x" * pad}, p="y" * extra)
            if len(token) == length:
                return token
    raise AssertionError(f"no token of {length} characters")
