"""A software WebAuthn authenticator for the tests: an ES256 key pair per
credential, resident (it keeps the user handle), answering
navigator.credentials.create and .get as a browser would hand them to the
service (the JSON of PublicKeyCredential), with "none" or "packed" (self)
attestation. Each knob of a real ceremony that a check depends on (the
origin, the RP id, the flags, the counter) can be set wrong on purpose."""
import base64
import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor

UP, UV, AT = 0x01, 0x04, 0x40
ORIGIN = "http://localhost:8000"
RP_ID = "localhost"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Credential:
    """One resident credential: its id, key, user handle and counter."""

    def __init__(self, user_handle, rp_id=RP_ID, counter=0):
        self.id = os.urandom(32)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.user_handle = user_handle
        self.rp_id = rp_id
        self.counter = counter

    def cose_key(self):
        numbers = self.key.public_key().public_numbers()
        return cbor.encode({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})


def _client_data(kind, challenge, origin):
    return json.dumps({"type": kind, "challenge": challenge, "origin": origin,
                       "crossOrigin": False}).encode()


def _auth_data(rp_id, flags, counter, attested=b""):
    return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", counter) \
        + attested


def create(options, origin=ORIGIN, rp_id=None, flags=UP | UV | AT, fmt="none", counter=0,
           credential=None):
    """A new credential for creation ``options`` (the service's JSON), and
    the browser's answer to send back; or ``credential`` registered again
    (an authenticator that ignores excludeCredentials)."""
    rp_id = rp_id or options["rp"]["id"]
    credential = credential or Credential(unb64url(options["user"]["id"]), rp_id, counter)
    attested = bytes(16) + struct.pack(">H", len(credential.id)) + credential.id \
        + credential.cose_key()
    auth_data = _auth_data(rp_id, flags, counter, attested)
    client_data = _client_data("webauthn.create", options["challenge"], origin)
    statement = {}
    if fmt == "packed":  # self attestation: signed by the credential's own key
        signed = auth_data + hashlib.sha256(client_data).digest()
        statement = {"alg": -7, "sig": credential.key.sign(signed, ec.ECDSA(hashes.SHA256()))}
    attestation = cbor.encode({"fmt": fmt, "attStmt": statement, "authData": auth_data})
    return credential, {
        "id": b64url(credential.id), "rawId": b64url(credential.id), "type": "public-key",
        "response": {"clientDataJSON": b64url(client_data),
                     "attestationObject": b64url(attestation), "transports": ["internal"]},
        "clientExtensionResults": {}, "authenticatorAttachment": "platform"}


def get(credential, options, origin=ORIGIN, rp_id=None, flags=UP | UV, counter=None,
        user_handle=None):
    """The browser's answer to request ``options`` with ``credential``; the
    counter moves one on unless ``counter`` says what to send."""
    credential.counter = credential.counter + 1 if counter is None else counter
    auth_data = _auth_data(rp_id or credential.rp_id, flags, credential.counter)
    client_data = _client_data("webauthn.get", options["challenge"], origin)
    signature = credential.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                    ec.ECDSA(hashes.SHA256()))
    handle = credential.user_handle if user_handle is None else user_handle
    return {"id": b64url(credential.id), "rawId": b64url(credential.id), "type": "public-key",
            "response": {"clientDataJSON": b64url(client_data),
                         "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature), "userHandle": b64url(handle)},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform"}
