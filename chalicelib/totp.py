"""TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps), through pyotp.

pyotp is imported inside each function: only the second-factor routes need
it, never the authorizer's cold start.
"""
import hmac
import re

STEP_SECONDS = 30
DIGITS = 6
# A code of the step before or after the current one is accepted too: the
# phone's clock and the server's may differ, and typing takes time.
WINDOW = 1
_CODE = re.compile(r"[0-9]{%d}" % DIGITS)


def new_secret():
    """A random secret of 160 bits (RFC 4226's recommended length), in base32."""
    import pyotp

    return pyotp.random_base32(32)


def uri(secret, username, issuer):
    """The ``otpauth://`` URI that authenticator apps read from a QR code."""
    import pyotp

    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def code_at(secret, step, digits=DIGITS):
    """The code of time step ``step`` (seconds since the epoch // 30)."""
    import pyotp

    return pyotp.TOTP(secret, digits=digits).generate_otp(step)


def step_of(now):
    return int(now) // STEP_SECONDS


def matching_step(secret, code, now, after=None):
    """The time step whose code ``code`` is, within WINDOW of ``now`` and
    later than ``after`` (the last step accepted: each is accepted once);
    None when there is none. Every candidate is compared in constant time."""
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        return None
    current = step_of(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(code_at(secret, step), code) and (after is None or step > after):
            found = found if found is not None else step
    return found


def qr_svg(text):
    """``text`` as a QR code, an SVG document made here (no script, no
    outside request: the page's strict CSP stays as it is)."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=4)
    return out.getvalue().decode("utf-8")
