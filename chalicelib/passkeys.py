"""WebAuthn (Level 2) for passkeys, through py_webauthn: the options a
browser needs, and the checks of what its authenticator answers.

Every ceremony requires user verification and a discoverable credential,
and names the relying party id and the origin of configuration
(config.webauthn_rp_id, config.webauthn_origin). webauthn, and with it
cryptography, is imported inside each function: only the passkey routes
need it, never the authorizer's cold start. Anything the library refuses,
or cannot parse, is one :class:`Refused`, whose text never reaches a client
or a log (it can quote what the client sent).
"""
import base64
import json
from collections import namedtuple

from chalicelib import config

# How long a browser waits for the person at the authenticator (the
# challenge itself lives CHALLENGE_SECONDS).
_TIMEOUT_MS = 120_000

Registered = namedtuple("Registered", "credential_id public_key sign_count")

# WebAuthn Level 3 (7.1, step 25): a longer credential id fails the
# registration. Both bounds keep what one passkey adds to the user's factors
# item (DynamoDB's 400 KB, for every factor of the user) small: the COSE
# key is kept as the authenticator sent it, extra parameters included, and
# the largest the library verifies (RSA-4096) is about 550 bytes.
MAX_CREDENTIAL_ID_BYTES = 1023
MAX_PUBLIC_KEY_BYTES = 2048


class Refused(Exception):
    """The authenticator's answer does not verify, or is not one."""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_challenge():
    from webauthn.helpers import generate_challenge

    return generate_challenge()  # 64 random bytes


def creation_options(challenge, user_id, username, exclude):
    """PublicKeyCredentialCreationOptions as JSON (a dict) for
    ``navigator.credentials.create``, excluding the credentials ``exclude``
    (base64url ids) that the user has already."""
    from webauthn import generate_registration_options
    from webauthn.helpers import options_to_json
    from webauthn.helpers.structs import (AuthenticatorSelectionCriteria,
                                          PublicKeyCredentialDescriptor,
                                          ResidentKeyRequirement, UserVerificationRequirement)

    options = generate_registration_options(
        rp_id=config.webauthn_rp_id(), rp_name=config.SERVICE_NAME, user_name=username,
        user_id=user_id.encode("ascii"), user_display_name=username, challenge=challenge,
        timeout=_TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=_bytes(c)) for c in exclude])
    return json.loads(options_to_json(options))


def request_options(challenge, allow=()):
    """PublicKeyCredentialRequestOptions as JSON (a dict) for
    ``navigator.credentials.get``: any discoverable credential of this
    relying party, or only those of ``allow`` (base64url ids)."""
    from webauthn import generate_authentication_options
    from webauthn.helpers import options_to_json
    from webauthn.helpers.structs import (PublicKeyCredentialDescriptor,
                                          UserVerificationRequirement)

    options = generate_authentication_options(
        rp_id=config.webauthn_rp_id(), challenge=challenge, timeout=_TIMEOUT_MS,
        allow_credentials=[PublicKeyCredentialDescriptor(id=_bytes(c)) for c in allow],
        user_verification=UserVerificationRequirement.REQUIRED)
    return json.loads(options_to_json(options))


def verify_registration(credential, challenge):
    """The new credential (base64url id, COSE public key, counter) of a
    ``navigator.credentials.create`` answer made for ``challenge``."""
    from webauthn import verify_registration_response

    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge,
            expected_rp_id=config.webauthn_rp_id(), expected_origin=config.webauthn_origin(),
            require_user_verification=True)
    except Exception as exc:  # noqa: BLE001 - any failure to verify is a refusal
        raise Refused(type(exc).__name__) from None
    if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        raise Refused("CredentialIdTooLong")
    if len(verified.credential_public_key) > MAX_PUBLIC_KEY_BYTES:
        raise Refused("PublicKeyTooLong")
    return Registered(b64url(verified.credential_id), verified.credential_public_key,
                      verified.sign_count)


def claimed(credential):
    """(credential id, user handle as text or None) that an assertion claims,
    before anything of it is verified."""
    from webauthn.helpers import parse_authentication_credential_json

    try:
        parsed = parse_authentication_credential_json(credential)
        handle = parsed.response.user_handle
        return b64url(parsed.raw_id), handle.decode("ascii") if handle else None
    except Exception as exc:  # noqa: BLE001
        raise Refused(type(exc).__name__) from None


def verify_assertion(credential, challenge, public_key, sign_count):
    """The authenticator's new signature counter, once ``credential`` (a
    ``navigator.credentials.get`` answer) is proven made for ``challenge``
    by the key ``public_key``, with the user verified. A counter that does
    not move past ``sign_count`` (where the authenticator keeps one) is
    refused: a cloned authenticator."""
    from webauthn import verify_authentication_response

    try:
        return verify_authentication_response(
            credential=credential, expected_challenge=challenge,
            expected_rp_id=config.webauthn_rp_id(), expected_origin=config.webauthn_origin(),
            credential_public_key=public_key, credential_current_sign_count=sign_count,
            require_user_verification=True).new_sign_count
    except Exception as exc:  # noqa: BLE001
        raise Refused(type(exc).__name__) from None


def _bytes(b64):
    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
