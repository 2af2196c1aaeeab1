"""The second factors through the built zip: TOTP set up, and a password
login finished with a code (pyotp computing it, as a phone does); a passkey
registered, and a login with it alone (the software authenticator, for the
origin of the stage's PUBLIC_URL). Answers by name, for the walk through
every route (test_deploy.py)."""
import time

import pyotp

import authenticator
from conftest import PASSWORD


def walk(gateway):
    environment = gateway.runtimes["APIHandler"].environment
    scheme, rest = environment["PUBLIC_URL"].split("://", 1)
    origin = f"{scheme}://{rest.split('/', 1)[0]}"
    a = {}
    fay = {"username": "fay", "password": PASSWORD}
    assert gateway.call("POST", "/api/v1/signup", {**fay, "email": "fay@example.com"}).status == 201
    token = gateway.call("POST", "/api/v1/login", fay).json["token"]

    a["totp_setup"] = gateway.call("POST", "/api/v1/users/me/mfa/totp", {"password": PASSWORD},
                                   token=token)
    secret = a["totp_setup"].json["secret"]
    a["totp_confirm"] = gateway.call("POST", "/api/v1/users/me/mfa/totp/confirm",
                                     {"code": pyotp.TOTP(secret).now()}, token=token)
    a["mfa_required"] = gateway.call("POST", "/api/v1/login", fay)
    # The step after the confirmation's: a code is accepted once.
    a["login_totp"] = gateway.call("POST", "/api/v1/login/mfa", {
        "mfa_token": a["mfa_required"].json["mfa_token"],
        "code": pyotp.TOTP(secret).at(time.time() + 30)})

    options = gateway.call("POST", "/api/v1/users/me/passkeys/options", token=token).json
    credential, made = authenticator.create(options["options"], origin=origin)
    a["passkey_add"] = gateway.call("POST", "/api/v1/users/me/passkeys", {
        "challenge_id": options["challenge_id"], "credential": made, "name": "phone"},
        token=token)
    options = gateway.call("POST", "/api/v1/login/passkey/options", {}).json
    a["login_passkey"] = gateway.call("POST", "/api/v1/login/passkey", {
        "challenge_id": options["challenge_id"],
        "credential": authenticator.get(credential, options["options"], origin=origin)})
    a["mfa_status"] = gateway.call("GET", "/api/v1/users/me/mfa", token=token)
    return a
