"""WebAuthn (Level 2) for passkeys, through Yubico's fido2 server: the
options a browser needs, and the checks of what its authenticator answers.

Every ceremony requires user verification and a discoverable credential,
and names the relying party id and the origin of configuration
(config.webauthn_rp_id, config.webauthn_origin). fido2, and with it
cryptography, is imported inside each function: only the passkey routes
need it, never the authorizer's cold start. (fido2 rather than py_webauthn:
it needs nothing but cryptography, whose wheels the Lambda runtime loads,
while py_webauthn 3 needs cbor2 6, which ships no wheel Lambda's Python can
load, and pyOpenSSL, whose mere presence makes botocore import it at every
cold start.) Anything the library refuses, or cannot parse, is one
:class:`Refused`, whose text never reaches a client or a log (it can quote
what the client sent).
"""
import base64
import logging
import secrets
from collections import namedtuple

from chalicelib import config

# How long a browser waits for the person at the authenticator (the
# challenge itself lives CHALLENGE_SECONDS).
_TIMEOUT_MS = 120_000
# fido2 logs credential ids at INFO; they are the service's to log or not.
logging.getLogger("fido2").setLevel(logging.WARNING)

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
    return secrets.token_bytes(64)


def _server():
    from fido2.server import Fido2Server
    from fido2.webauthn import AttestationConveyancePreference, PublicKeyCredentialRpEntity

    origin = config.webauthn_origin()
    server = Fido2Server(PublicKeyCredentialRpEntity(name=config.SERVICE_NAME,
                                                     id=config.webauthn_rp_id()),
                         attestation=AttestationConveyancePreference.NONE,
                         verify_origin=lambda sent: sent == origin)
    server.timeout = _TIMEOUT_MS
    return server


def _descriptors(ids):
    from fido2.webauthn import PublicKeyCredentialDescriptor, PublicKeyCredentialType

    return [PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=_bytes(i))
            for i in ids]


def _state(challenge):
    """What fido2 checks an answer against: the challenge, and user
    verification required."""
    from fido2.utils import websafe_encode
    from fido2.webauthn import UserVerificationRequirement

    return {"challenge": websafe_encode(challenge),
            "user_verification": UserVerificationRequirement.REQUIRED}


def creation_options(challenge, user_id, username, exclude):
    """PublicKeyCredentialCreationOptions as JSON (a dict) for
    ``navigator.credentials.create``, excluding the credentials ``exclude``
    (base64url ids) that the user has already."""
    from fido2.webauthn import (PublicKeyCredentialUserEntity, ResidentKeyRequirement,
                                UserVerificationRequirement)

    options, _ = _server().register_begin(
        PublicKeyCredentialUserEntity(name=username, id=user_id.encode("ascii"),
                                      display_name=username),
        credentials=_descriptors(exclude), challenge=challenge,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.REQUIRED)
    return dict(options)["publicKey"]


def request_options(challenge, allow=()):
    """PublicKeyCredentialRequestOptions as JSON (a dict) for
    ``navigator.credentials.get``: any discoverable credential of this
    relying party, or only those of ``allow`` (base64url ids)."""
    from fido2.webauthn import UserVerificationRequirement

    options, _ = _server().authenticate_begin(
        credentials=_descriptors(allow), challenge=challenge,
        user_verification=UserVerificationRequirement.REQUIRED)
    return dict(options)["publicKey"]


def _public_key_credential(credential):
    """``credential`` when it says it is a PublicKeyCredential (the type
    fido2 does not look at)."""
    if not isinstance(credential, dict) or credential.get("type") != "public-key":
        raise Refused("NotAPublicKeyCredential")
    return credential


def verify_registration(credential, challenge):
    """The new credential (base64url id, COSE public key, counter) of a
    ``navigator.credentials.create`` answer made for ``challenge``."""
    from fido2 import cbor

    try:
        made = _server().register_complete(_state(challenge),
                                           _public_key_credential(credential))
        key = made.credential_data
        public_key = cbor.encode(dict(key.public_key))
    except Exception as exc:  # noqa: BLE001 - any failure to verify is a refusal
        raise Refused(type(exc).__name__) from None
    if len(key.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        raise Refused("CredentialIdTooLong")
    if len(public_key) > MAX_PUBLIC_KEY_BYTES:
        raise Refused("PublicKeyTooLong")
    return Registered(b64url(key.credential_id), public_key, made.counter)


def claimed(credential):
    """(credential id, user handle as text or None) that an assertion claims,
    before anything of it is verified."""
    from fido2.webauthn import AuthenticationResponse

    try:
        parsed = AuthenticationResponse.from_dict(_public_key_credential(credential))
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
    from fido2 import cbor
    from fido2.cose import CoseKey
    from fido2.webauthn import AttestedCredentialData, AuthenticationResponse

    try:
        answer = AuthenticationResponse.from_dict(_public_key_credential(credential))
        known = AttestedCredentialData.create(b"\0" * 16, answer.raw_id,
                                              CoseKey.parse(cbor.decode(public_key)))
        _server().authenticate_complete(_state(challenge), [known], answer)
        counter = answer.response.authenticator_data.counter
    except Exception as exc:  # noqa: BLE001
        raise Refused(type(exc).__name__) from None
    if (counter or sign_count) and counter <= sign_count:
        raise Refused("SignCountNotIncreased")
    return counter


def _bytes(b64):
    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
