"""orders-api: an example resource server behind login-service's authorizer.

Its route is protected by login-service's token authorizer, attached by ARN
(a deployed login-service stack exports it as ``<stack>-TokenAuthorizerArn``;
this app reads it from ``LOGIN_AUTHORIZER_ARN`` in .chalice/config.json).
API Gateway calls the authorizer before every request and never caches its
answer, so a token revoked at the login service is refused here on its very
next use; the view reads the caller from ``request.context["authorizer"]``.
The walkthrough is docs/protect-your-api.md in the login service's repository.
"""
import os
import re

from chalice import Chalice, CustomAuthorizer

app = Chalice(app_name="orders-api")

_FUNCTION_ARN = re.compile(r"arn:(aws[a-z-]*):lambda:([a-z0-9-]+):[0-9]{12}:function:[\w-]+")


def authorizer_uri(function_arn):
    """API Gateway's URI for invoking a Lambda function as an authorizer."""
    match = _FUNCTION_ARN.fullmatch(function_arn or "")
    if match is None:
        # Read when chalice packages the app: a bad value stops the build,
        # rather than deploying an API whose every request fails.
        raise RuntimeError("LOGIN_AUTHORIZER_ARN must be the login service's authorizer "
                           f"function ARN, not {function_arn!r}")
    partition, region = match.groups()
    return (f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/"
            f"{function_arn}/invocations")


login_service = CustomAuthorizer(
    "login_service", header="Authorization",
    authorizer_uri=authorizer_uri(os.environ.get("LOGIN_AUTHORIZER_ARN")),
    # Never cached (chalice's default is 300 s): a cached allow would let a
    # revoked token through until it expired.
    ttl_seconds=0)


def caller(request):
    """Who the login service let in: (user_id, username, roles).

    Every context value is a string (API Gateway allows no lists): the
    roles are comma-separated, "" for none, and are the user's roles at
    this very request.
    """
    context = request.context["authorizer"]
    roles = [role for role in context["roles"].split(",") if role]
    return context["user_id"], context["username"], roles


@app.route("/orders", authorizer=login_service)
def orders():
    """The caller's orders (an example: none are stored)."""
    user_id, username, roles = caller(app.current_request)
    return {"user_id": user_id, "username": username, "admin": "admin" in roles, "orders": []}
