"""HTTP routes of the login service: parse, call, shape. Nothing else."""
import time

from chalice import AuthResponse, Chalice, CORSConfig, Response

from chalicelib import audit, authorizer, config, page, service, signing_keys
from chalicelib.contract import contracts, edge
from chalicelib.terms import DESCRIPTION_LENGTH, PREFIX
from chalicelib.web import (FORM_OR_JSON, PAGED, client_credentials, client_ip, flag, identity,
                            origin, requested_page, user_agent)

config.check_at_cold_start()
if config.handler() != "app.mailer":  # it signs nothing: its role may not read the secret
    signing_keys.check_at_cold_start()
config.refuse_plain_chalice_local()
# The app's logger has the service's name, which is audit's logger: Chalice
# must not configure it (it would set it to ERROR, silencing every line).
app = Chalice(app_name=config.SERVICE_NAME, configure_logs=False)
# Tokens travel in a header, never in a cookie, so any origin may call the
# API: a page cannot borrow a visitor's session without holding its token.
app.api.cors = CORSConfig(allow_origin="*", allow_headers=["Authorization"], max_age=600)


@app.authorizer(ttl_seconds=0)
def token_authorizer(auth_request):
    """Allows a request only while its token is on the whitelist."""
    # Raises when it cannot decide: API Gateway then answers 503, never allows.
    context = authorizer.decide(auth_request.token)
    if context is None:
        return {"principalId": "denied", "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*"}],
        }}
    # Every method and path of the API and stage that asked, read from the
    # incoming method ARN: other APIs of the account attach this authorizer
    # too (docs/protect-your-api.md), and a cached answer must cover the
    # caller's whole stage, never another API's.
    return AuthResponse(routes=["*"], principal_id=context["user_id"], context=context)


@app.middleware("http")
def request_log(event, get_response):
    """One structured log line per request, named by API Gateway's request
    id (the access log's ``$context.requestId``) and Lambda's beside it."""
    started = time.perf_counter()
    response = get_response(event)
    context = event.context or {}
    audit.request(context.get("requestId"), getattr(app.lambda_context, "aws_request_id", None),
                  event.method, context.get("resourcePath"), response.status_code, started,
                  time.perf_counter(), (context.get("authorizer") or {}).get("user_id"))
    return response


# Registered after the log, so that the log sees the answers it gives.
app.register_middleware(edge, "http")

# Each view declares its contract once (chalicelib/contract.py); the OpenAPI
# document is built from those and Chalice's route table. ``errors`` lists
# what the view itself decides: 400 and 422 come with a body, 422 with query
# parameters, 401, 403 and 503 with the authorizer, 413 with every route.
def client_check(request):
    """Introspection's client credentials, checked alone (see contracts)."""
    from chalicelib import introspection  # the authorizer's cold start never needs it

    introspection.authenticate(*client_credentials(request))


contract = contracts(app, checks={"client": client_check})


@app.route("/")
@contract(answer="ServiceOut")
def index(request):
    """Names the service and its version; a browser gets the sessions page."""
    if page.wants_html(request.headers.get("accept")):
        body, headers = page.page()
        return Response(body=body, headers=headers)
    return {"service": config.SERVICE_NAME, "version": config.VERSION}


@app.route(PREFIX + "/openapi.json")
@contract()
def openapi_document(request):
    """The OpenAPI 3 document of this API."""
    from chalicelib import openapi  # apispec is loaded only for this route

    return openapi.document(app.routes)


@app.route(PREFIX + "/signup", methods=["POST"])
@contract(body="SignupIn", answer="UserOut", status=201, errors=(409, 503))
def signup(request, body):
    """Creates a user; a verification link goes to the address."""
    return service.account.signup(body["username"], body["email"], body["password"],
                                  origin=origin(request))


@app.route(PREFIX + "/login", methods=["POST"])
@contract(body="LoginIn", answer="LoginOut", errors=(401, 403, 429, 503))
def login(request, body):
    """Exchanges a username and password for a token."""
    description = body["description"]
    if description is None:
        description = user_agent(request, DESCRIPTION_LENGTH)
    return service.login.with_password(body["username"], body["password"], description,
                                       client_ip(request))


@app.route(PREFIX + "/logout", methods=["POST"], authorizer=token_authorizer)
@contract(answer="RevokedOut")
def logout(request):
    """Revokes the token that makes this request."""
    return {"revoked": service.sessions.logout(identity(request), origin(request))}


@app.route(PREFIX + "/users/me", authorizer=token_authorizer)
@contract(answer="UserOut", errors=(404,))
def users_me(request):
    """The user that makes this request."""
    return service.account.me(identity(request))


@app.route(PREFIX + "/users/me/events", authorizer=token_authorizer)
@contract(answer="EventPageOut", query=PAGED)
def list_events(request):
    """The caller's security log, newest first."""
    me = identity(request)
    return service.account.list_events(me.user_id,
                                       requested_page(request, "self-events", me.user_id))


@app.route(PREFIX + "/users/me/password", methods=["POST"], authorizer=token_authorizer)
@contract(body="PasswordChangeIn", answer="RevokedOut", errors=(403, 429))
def change_password(request, body):
    """Changes the password and revokes every other token of the user."""
    return {"revoked": service.account.change_password(
        identity(request), body["current_password"], body["new_password"], origin(request))}


@app.route(PREFIX + "/users/me", methods=["DELETE"], authorizer=token_authorizer)
@contract(body="AccountDeleteIn", answer="DeletedOut", errors=(403, 404, 429))
def delete_me(request, body):
    """Deletes the user and all its tokens."""
    return {"deleted": True, "revoked": service.account.delete(
        identity(request), body["password"], origin(request))}


@app.route(PREFIX + "/users/me/email/verification", methods=["POST"],
           authorizer=token_authorizer)
@contract(answer="SentOut", status=202, errors=(404, 409))
def request_verification(request):
    """Mails a new verification link to the caller's address."""
    service.recovery.request_verification(identity(request), origin(request))
    return {"sent": True}


@app.route(PREFIX + "/users/me/email", methods=["POST"], authorizer=token_authorizer)
@contract(body="EmailChangeIn", answer="SentOut", status=202, errors=(403, 404, 409, 429))
def change_email(request, body):
    """Mails a link to the new address; the address changes when it is used."""
    service.recovery.change_email(identity(request), body["password"], body["new_email"],
                                  origin(request))
    return {"sent": True}


@app.route(PREFIX + "/email/verify", methods=["POST"])
@contract(body="VerifyIn", answer="UserOut", errors=(409, 503))
def verify_email(request, body):
    """Spends a verification link: the address is verified (or changed)."""
    return service.recovery.verify(body["token"], origin(request))


@app.route(PREFIX + "/password/forgot", methods=["POST"])
@contract(body="ForgotIn", answer="SentOut", status=202, errors=(503,))
def forgot_password(request, body):
    """Mails a reset link, only to a verified address of an account; the
    same answer whoever's the address is."""
    service.recovery.forgot(body["email"], origin(request))
    return {"sent": True}


@app.route(PREFIX + "/password/reset", methods=["POST"])
@contract(body="ResetIn", answer="RevokedOut", errors=(503,))
def reset_password(request, body):
    """Spends a reset link: the new password set, every token revoked."""
    return {"revoked": service.recovery.reset(body["token"], body["new_password"],
                                              origin(request))}


@app.lambda_function(name="mailer")
def mailer(event, context):
    """The mail table's stream: each new item sent as mail (chalicelib/mailer.py)."""
    from chalicelib import mailer as outbox_mailer  # only this function sends mail

    outbox_mailer.handle(event)


@app.route(PREFIX + "/tokens", authorizer=token_authorizer)
@contract(answer="TokenPageOut", query=PAGED)
def list_tokens(request):
    """The caller's live tokens, newest first."""
    me = identity(request)
    return service.sessions.list_tokens(me, me.user_id,
                                        requested_page(request, "self", me.user_id))


@app.route(PREFIX + "/tokens/{token_id}", methods=["DELETE"], authorizer=token_authorizer)
@contract(answer="RevokedOut", errors=(404,))
def revoke_token(request, token_id):
    """Revokes one of the caller's tokens."""
    return {"revoked": service.sessions.revoke(identity(request), token_id, origin(request))}


@app.route(PREFIX + "/tokens", methods=["DELETE"], authorizer=token_authorizer)
@contract(answer="RevokedOut", query=("keep_current",))
def revoke_tokens(request):
    """Revokes all the caller's tokens, or all but this one."""
    me = identity(request)
    keep = me.token_id if flag(request, "keep_current") else None
    return {"revoked": service.sessions.revoke_all(me, keep=keep, origin=origin(request))}


@app.route(PREFIX + "/admin/users/{username}/tokens", authorizer=token_authorizer)
@contract(answer="TokenPageOut", errors=(403, 404), query=PAGED)
def admin_list_tokens(request, username):
    """Admin: another user's live tokens."""
    caller = identity(request)
    target = service.admin.target(caller, username)
    return service.sessions.list_tokens(caller, target.user_id,
                                        requested_page(request, "admin", target.user_id))


@app.route(PREFIX + "/admin/users/{username}/tokens", methods=["DELETE"],
           authorizer=token_authorizer)
@contract(answer="RevokedOut", errors=(403, 404))
def admin_revoke_tokens(request, username):
    """Admin: revokes every token of another user."""
    admin = identity(request)
    target = service.admin.target(admin, username)
    return {"revoked": service.sessions.revoke_all(target, admin=admin.user_id,
                                                   origin=origin(request))}


@app.route(PREFIX + "/admin/users/{username}/events", authorizer=token_authorizer)
@contract(answer="EventPageOut", errors=(403, 404), query=PAGED)
def admin_list_events(request, username):
    """Admin: another user's security log."""
    target = service.admin.target(identity(request), username)
    return service.account.list_events(target.user_id,
                                       requested_page(request, "admin-events", target.user_id))


@app.route(PREFIX + "/introspect", methods=["POST"], content_types=FORM_OR_JSON)
@contract(body="IntrospectIn", answer="Introspection", errors=(503,), credentials="client")
def introspect(request, body):
    """Token introspection (RFC 7662), for resource servers with client credentials."""
    from chalicelib import introspection  # the authorizer's cold start never needs it

    client_id, client_secret = client_credentials(request)
    return introspection.introspect(client_id, client_secret, body["token"])


# Second factors and passkeys: their modules (and pyotp, fido2, segno,
# cryptography) are loaded by these views only, never at the authorizer's
# cold start.
@app.route(PREFIX + "/login/mfa", methods=["POST"])
@contract(body="MfaIn", answer="LoginOut", errors=(400, 401, 429, 503))
def login_mfa(request, body):
    """Finishes a password login with a second factor."""
    from chalicelib.service import factor_logins

    return factor_logins.second_step(body["mfa_token"], client_ip(request), body.get("code"),
                                     body.get("recovery_code"), body.get("credential"))


@app.route(PREFIX + "/login/passkey/options", methods=["POST"])
@contract(body="PasskeyOptionsIn", answer="ChallengeOut", errors=(400, 503))
def login_passkey_options(request, body):
    """A challenge for a passkey login, or for a second step's passkey."""
    from chalicelib.service import factor_logins

    return factor_logins.login_options(body["mfa_token"])


@app.route(PREFIX + "/login/passkey", methods=["POST"])
@contract(body="PasskeyLoginIn", answer="LoginOut", errors=(401, 503))
def login_passkey(request, body):
    """Exchanges a passkey's assertion for a token, with no password."""
    from chalicelib.service import factor_logins

    description = body["description"]
    if description is None:
        description = user_agent(request, DESCRIPTION_LENGTH)
    return factor_logins.with_passkey(body["challenge_id"], body["credential"], description,
                                      client_ip(request))


@app.route(PREFIX + "/users/me/mfa", authorizer=token_authorizer)
@contract(answer="MfaOut")
def mfa_status(request):
    """The caller's second factors."""
    from chalicelib.service import factors

    return factors.status(identity(request))


@app.route(PREFIX + "/users/me/mfa/totp", methods=["POST"], authorizer=token_authorizer)
@contract(body="PasswordIn", answer="TotpSetupOut", errors=(403, 409, 429))
def totp_setup(request, body):
    """Starts TOTP: a new secret, pending until a code confirms it."""
    from chalicelib.service import factors

    return factors.start_totp(identity(request), body["password"], origin(request))


@app.route(PREFIX + "/users/me/mfa/totp/confirm", methods=["POST"], authorizer=token_authorizer)
@contract(body="CodeIn", answer="RecoveryCodesOut", errors=(401, 409))
def totp_confirm(request, body):
    """Enables TOTP with a first code; the recovery codes, shown once."""
    from chalicelib.service import factors

    return factors.confirm_totp(identity(request), body["code"], origin(request))


@app.route(PREFIX + "/users/me/mfa/totp", methods=["DELETE"], authorizer=token_authorizer)
@contract(body="PasswordAndCodeIn", answer="TotpOffOut", errors=(401, 403, 409, 429))
def totp_disable(request, body):
    """Disables TOTP and its recovery codes."""
    from chalicelib.service import factors

    return factors.disable_totp(identity(request), body["password"], body["code"],
                                origin(request))


@app.route(PREFIX + "/users/me/mfa/recovery-codes", methods=["POST"],
           authorizer=token_authorizer)
@contract(body="PasswordAndCodeIn", answer="RecoveryCodesOut", errors=(401, 403, 409, 429))
def renew_recovery_codes(request, body):
    """Ten new recovery codes; the old ones die."""
    from chalicelib.service import factors

    return factors.renew_recovery_codes(identity(request), body["password"], body["code"],
                                        origin(request))


@app.route(PREFIX + "/users/me/passkeys/options", methods=["POST"], authorizer=token_authorizer)
@contract(answer="ChallengeOut", errors=(403, 404))
def passkey_options(request):
    """A challenge for registering a passkey, excluding the caller's."""
    from chalicelib.service import factors

    return factors.registration_options(identity(request))


@app.route(PREFIX + "/users/me/passkeys", methods=["POST"], authorizer=token_authorizer)
@contract(body="PasskeyAddIn", answer="PasskeyOut", status=201, errors=(400, 403, 404))
def add_passkey(request, body):
    """Registers a passkey made for a challenge of the caller's."""
    from chalicelib.service import factors

    return factors.add_passkey(identity(request), body["challenge_id"], body["credential"],
                               body["name"], origin(request))


@app.route(PREFIX + "/users/me/passkeys/{passkey_id}", methods=["DELETE"],
           authorizer=token_authorizer)
@contract(body="PasswordIn", answer="RemovedOut", errors=(403, 404, 429))
def remove_passkey(request, body, passkey_id):
    """Removes one of the caller's passkeys."""
    from chalicelib.service import factors

    factors.remove_passkey(identity(request), passkey_id, body["password"], origin(request))
    return {"deleted": True}
