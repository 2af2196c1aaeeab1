"""TOTP as RFC 6238 computes it, and the window of steps accepted."""
import base64

import pytest

from chalicelib import totp

# RFC 6238 appendix B, the HMAC-SHA-1 rows: the 20-byte ASCII seed, 8 digits.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
               (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")]
NOW = 1_800_000_015  # the middle of a step


@pytest.mark.parametrize("seconds,code", RFC_VECTORS)
def test_codes_are_rfc_6238s_appendix_b_vectors(seconds, code):
    assert totp.code_at(RFC_SECRET, totp.step_of(seconds), digits=8) == code


def test_the_service_uses_six_digits_and_30_second_steps():
    assert totp.code_at(RFC_SECRET, totp.step_of(59)) == "287082"
    assert totp.step_of(59) == 1 and totp.step_of(60) == 2


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_a_code_of_the_step_before_or_after_is_accepted(offset):
    step = totp.step_of(NOW) + offset
    assert totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step), NOW) == step


@pytest.mark.parametrize("offset", [-2, 2])
def test_a_code_two_steps_away_is_refused(offset):
    code = totp.code_at(RFC_SECRET, totp.step_of(NOW) + offset)
    assert totp.matching_step(RFC_SECRET, code, NOW) is None


def test_a_step_used_and_every_earlier_one_are_refused():
    step = totp.step_of(NOW)
    assert totp.matching_step(RFC_SECRET, totp.code_at(RFC_SECRET, step), NOW, after=step) is None
    earlier = totp.code_at(RFC_SECRET, step - 1)
    assert totp.matching_step(RFC_SECRET, earlier, NOW, after=step) is None
    later = totp.code_at(RFC_SECRET, step + 1)
    assert totp.matching_step(RFC_SECRET, later, NOW, after=step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", " 123456", "１２３４５６", None])
def test_anything_but_six_ascii_digits_is_refused(code):
    assert totp.matching_step(RFC_SECRET, code, NOW) is None


def test_a_new_secret_is_160_random_bits_in_base32():
    first, second = totp.new_secret(), totp.new_secret()
    assert len(base64.b32decode(first)) == 20 and first != second


def test_the_uri_names_the_service_and_the_user():
    uri = totp.uri(RFC_SECRET, "alice", "login-service")
    assert uri.startswith("otpauth://totp/login-service:alice?")
    assert f"secret={RFC_SECRET}" in uri and "issuer=login-service" in uri


def test_the_qr_code_is_an_svg_document_with_no_script():
    svg = totp.qr_svg("otpauth://totp/login-service:alice?secret=" + RFC_SECRET)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<script" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
