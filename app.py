"""HTTP routes of the login service: parse, call, shape. Nothing else."""
import time

from chalice import AuthResponse, Chalice, CORSConfig, Response

from chalicelib import audit, authorizer, config, page, service
from chalicelib.rules import DESCRIPTION_LENGTH, PREFIX
from chalicelib.web import (client_ip, dump, edge, flag, handled, identity, load,
                            requested_page, user_agent)

config.check_at_cold_start()
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
    return AuthResponse(routes=["*"], principal_id=context["user_id"], context=context)


@app.middleware("http")
def request_log(event, get_response):
    """One structured log line per request."""
    started = time.perf_counter()
    response = get_response(event)
    context = event.context or {}
    audit.request(getattr(app.lambda_context, "aws_request_id", None), event.method,
                  context.get("resourcePath"), response.status_code, started,
                  time.perf_counter(), (context.get("authorizer") or {}).get("user_id"))
    return response


# Registered after the log, so that the log sees the answers it gives.
app.register_middleware(edge, "http")


@app.route("/")
@handled
def index():
    """Names the service and its version; a browser gets the sessions page."""
    if page.wants_html(app.current_request.headers.get("accept")):
        body, headers = page.page()
        return Response(body=body, headers=headers)
    return {"service": config.SERVICE_NAME, "version": config.VERSION}


@app.route(PREFIX + "/openapi.json")
@handled
def openapi_document():
    """The OpenAPI 3 document of this API."""
    from chalicelib import openapi  # apispec is loaded only for this route

    return openapi.document()


@app.route(PREFIX + "/signup", methods=["POST"])
@handled
def signup():
    """Creates a user."""
    data = load("SignupIn", app.current_request)
    user = service.signup(data["username"], data["email"], data["password"])
    return Response(body=dump("UserOut", user), status_code=201)


@app.route(PREFIX + "/login", methods=["POST"])
@handled
def login():
    """Exchanges a username and password for a token."""
    request = app.current_request
    data = load("LoginIn", request)
    description = data["description"]
    if description is None:
        description = user_agent(request, DESCRIPTION_LENGTH)
    result = service.login(data["username"], data["password"], description, client_ip(request))
    return dump("LoginOut", result)


@app.route(PREFIX + "/logout", methods=["POST"], authorizer=token_authorizer)
@handled
def logout():
    """Revokes the token that makes this request."""
    return {"revoked": service.logout(identity(app.current_request))}


@app.route(PREFIX + "/users/me", authorizer=token_authorizer)
@handled
def users_me():
    """The user that makes this request."""
    return dump("UserOut", service.me(identity(app.current_request)))


@app.route(PREFIX + "/users/me/password", methods=["POST"], authorizer=token_authorizer)
@handled
def change_password():
    """Changes the password and revokes every other token of the user."""
    request = app.current_request
    data = load("PasswordChangeIn", request)
    revoked = service.change_password(identity(request), data["current_password"],
                                      data["new_password"])
    return {"revoked": revoked}


@app.route(PREFIX + "/users/me", methods=["DELETE"], authorizer=token_authorizer)
@handled
def delete_me():
    """Deletes the user and all its tokens."""
    request = app.current_request
    data = load("AccountDeleteIn", request)
    return {"deleted": True, "revoked": service.delete_account(identity(request), data["password"])}


@app.route(PREFIX + "/tokens", authorizer=token_authorizer)
@handled
def list_tokens():
    """The caller's live tokens, newest first."""
    request = app.current_request
    me = identity(request)
    page = service.list_tokens(me, me.user_id, requested_page(request, "self", me.user_id))
    return dump("TokenPageOut", page)


@app.route(PREFIX + "/tokens/{token_id}", methods=["DELETE"], authorizer=token_authorizer)
@handled
def revoke_token(token_id):
    """Revokes one of the caller's tokens."""
    return {"revoked": service.revoke(identity(app.current_request), token_id)}


@app.route(PREFIX + "/tokens", methods=["DELETE"], authorizer=token_authorizer)
@handled
def revoke_tokens():
    """Revokes all the caller's tokens, or all but this one."""
    request = app.current_request
    me = identity(request)
    keep = me.token_id if flag(request, "keep_current") else None
    return {"revoked": service.revoke_all(me.user_id, keep=keep)}


@app.route(PREFIX + "/admin/users/{username}/tokens", authorizer=token_authorizer)
@handled
def admin_list_tokens(username):
    """Admin: another user's live tokens."""
    request = app.current_request
    caller = identity(request)
    target = service.admin_target(caller, username)
    page = service.list_tokens(caller, target.user_id,
                               requested_page(request, "admin", target.user_id))
    return dump("TokenPageOut", page)


@app.route(PREFIX + "/admin/users/{username}/tokens", methods=["DELETE"],
           authorizer=token_authorizer)
@handled
def admin_revoke_tokens(username):
    """Admin: revokes every token of another user."""
    admin = identity(app.current_request)
    target = service.admin_target(admin, username)
    return {"revoked": service.revoke_all(target.user_id, by=admin.user_id)}
