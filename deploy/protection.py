"""What keeps an overload from taking authentication down, defined once.

Three layers, outermost first, each rendered into the deployment template
by deploy/template.py (see docs/deploy.md for the numbers and their costs):

- an optional AWS WAF rate-based rule per client IP (template parameter
  ``WafRateLimitPerIp``, off by default: a web ACL costs money every month);
- the stage's throttling, a default for every method and stricter limits on
  every route that runs bcrypt and on introspection, which anyone can call
  (``THROTTLING``);
- reserved concurrency: the authorizer gets capacity of its own and the API
  handler a cap, so a flood of logins (0.3 s of CPU each) can never take the
  account's whole pool. The numbers are each stage's ``reserved_concurrency``
  in .chalice/config.json; the template parameter ``ReserveConcurrency``
  switches them on, because an account whose Lambda quota is still 10 (new
  accounts) cannot reserve anything at all.
"""
from dataclasses import dataclass

from chalicelib.terms import PREFIX
from deploy import gateway_responses, stages


@dataclass(frozen=True)
class Limit:
    rate: float  # requests per second, refilled steadily
    burst: int  # requests at once


# Stage-wide (every client together), not per client: they protect the
# functions and the bill; the WAF rule is what limits one client.
DEFAULT_LIMIT = Limit(rate=100, burst=200)
# The bcrypt runs one route may buy, a second and at once (login's own
# limit): 10 a second keep about 4 API handler instances busy (0.3 s of a
# full vCPU each).
BCRYPT_RUNS = Limit(rate=10, burst=20)
# Every route that runs bcrypt, with its runs per request: a token buys as
# many requests as it likes, so the password routes need a limit of their
# own. A route that takes a password belongs here (tests/deploy checks it
# against app.py's routes).
BCRYPT_ROUTES = {
    ("POST", PREFIX + "/login"): 1,
    ("POST", PREFIX + "/signup"): 1,
    ("POST", PREFIX + "/users/me/password"): 2,  # checks the current one, hashes the new
    ("DELETE", PREFIX + "/users/me"): 1,
    ("POST", PREFIX + "/users/me/email"): 1,  # checks the password
    ("POST", PREFIX + "/password/reset"): 1,  # hashes the new one
    # Second factors: each change checks the password once.
    ("POST", PREFIX + "/users/me/mfa/totp"): 1,
    ("DELETE", PREFIX + "/users/me/mfa/totp"): 1,
    ("POST", PREFIX + "/users/me/mfa/recovery-codes"): 1,
    ("DELETE", PREFIX + "/users/me/passkeys/{passkey_id}"): 1,
}
THROTTLING = {
    **{route: Limit(rate=BCRYPT_RUNS.rate // runs, burst=BCRYPT_RUNS.burst // runs)
       for route, runs in BCRYPT_ROUTES.items()},
    # Stricter than its bcrypt runs allow: people sign up once; a burst of
    # signups is somebody's script.
    ("POST", PREFIX + "/signup"): Limit(rate=5, burst=10),
    # Anyone can call it (credentials are checked inside), and each call
    # costs up to three read units: half the stage's rate, so that a flood
    # of introspections leaves room for logins and the service's own routes.
    ("POST", PREFIX + "/introspect"): Limit(rate=50, burst=100),
    # Anyone can call them, as login: each asks the mailer for a link to any
    # address, or spends one. Login's budget, though they run no bcrypt.
    ("POST", PREFIX + "/password/forgot"): BCRYPT_RUNS,
    ("POST", PREFIX + "/email/verify"): BCRYPT_RUNS,
    # The steps of a login that come before any token: anyone can call them,
    # and each writes (a challenge, a counted code); login's budget.
    ("POST", PREFIX + "/login/mfa"): BCRYPT_RUNS,
    ("POST", PREFIX + "/login/passkey/options"): BCRYPT_RUNS,
    ("POST", PREFIX + "/login/passkey"): BCRYPT_RUNS,
    # Token routes that send mail (a link, or a notice of a passkey added),
    # which the stage's default would let a token ask for a hundred times a
    # second: login's budget (the mailer's per-address limit holds anyway).
    ("POST", PREFIX + "/users/me/email/verification"): BCRYPT_RUNS,
    ("POST", PREFIX + "/users/me/passkeys/options"): BCRYPT_RUNS,
    ("POST", PREFIX + "/users/me/passkeys"): BCRYPT_RUNS,
}

# Per client IP over WAF_WINDOW_SECONDS, when the parameter enables it.
WAF_DEFAULT_LIMIT = 600  # 2 requests a second on average, per 5 minutes
WAF_MIN_LIMIT = 10  # AWS's own minimum for a rate-based rule
WAF_WINDOW_SECONDS = 300

def method_settings():
    """The stage's MethodSettings: the default first, then each route's own."""
    settings = [_setting("*", "/*", DEFAULT_LIMIT)]
    for (method, path), limit in sorted(THROTTLING.items()):
        # CloudFormation spells a resource path with each "/" as "~1".
        settings.append(_setting(method, "/" + path.replace("/", "~1"), limit))
    return settings


def _setting(method, path, limit):
    return {"HttpMethod": method, "ResourcePath": path,
            "ThrottlingRateLimit": limit.rate, "ThrottlingBurstLimit": limit.burst,
            # Execution logs (and their data trace, which would log request
            # bodies and tokens) stay off: the access log is the record.
            "LoggingLevel": "OFF", "DataTraceEnabled": False, "MetricsEnabled": False}


def reserved_concurrency(project_dir, stage):
    """{function resource: its reserved concurrency in ``stage``, or None}."""
    return {resource: stages.config(project_dir, stage, name).reserved_concurrency
            for name, resource in stages.FUNCTIONS.items()}


def concurrency_parameter():
    return {"ReserveConcurrency": {
        "Type": "String", "AllowedValues": ["true", "false"], "Default": "false",
        "Description": "Reserve each function's reserved_concurrency of .chalice/config.json. "
                       "Needs an account Lambda quota of at least their sum + 100 "
                       "(aws lambda get-account-settings)."}}


def concurrency_properties(project_dir, stage):
    """Each function's ReservedConcurrentExecutions, when the parameter says so."""
    properties = {}
    for resource, reserved in reserved_concurrency(project_dir, stage).items():
        if reserved is not None:
            properties[resource] = {"ReservedConcurrentExecutions": {
                "Fn::If": ["ReservingConcurrency", reserved, {"Ref": "AWS::NoValue"}]}}
    return properties


def waf_parameter():
    return {"WafRateLimitPerIp": {
        "Type": "Number", "Default": 0, "MinValue": 0,
        "Description": f"Requests per client IP per {WAF_WINDOW_SECONDS} s before AWS WAF "
                       f"blocks it with 429 (0: no web ACL; else at least {WAF_MIN_LIMIT}, "
                       f"e.g. {WAF_DEFAULT_LIMIT}). Costs a web ACL and a rule a month plus "
                       "a fee per million requests."}}


def waf_resources(name):
    """The web ACL with its one rate-based rule, and its association with
    the stage; both exist only when the parameter is not 0."""
    blocked = gateway_responses.RESPONSES["THROTTLED"]
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True}
    return {
        "WebAcl": {
            "Type": "AWS::WAFv2::WebACL",
            "Condition": "UsingWaf",
            "Properties": {
                "Name": name,
                "Scope": "REGIONAL",
                "DefaultAction": {"Allow": {}},
                "VisibilityConfig": {**visibility, "MetricName": name},
                # WAF's own block is a 403, which clients read as "this token
                # is denied" and drop: a 429 in the service's error shape
                # instead. WAF prefixes custom headers with x-amzn-waf-, so
                # no real Retry-After can be sent.
                "CustomResponseBodies": {"too_many_requests": {
                    "ContentType": "APPLICATION_JSON",
                    "Content": gateway_responses.body("THROTTLED")}},
                "Rules": [{
                    "Name": "rate-per-client-ip",
                    "Priority": 0,
                    "Statement": {"RateBasedStatement": {
                        "Limit": {"Ref": "WafRateLimitPerIp"},
                        "AggregateKeyType": "IP",
                        "EvaluationWindowSec": WAF_WINDOW_SECONDS}},
                    "Action": {"Block": {"CustomResponse": {
                        "ResponseCode": blocked.status,
                        "CustomResponseBodyKey": "too_many_requests"}}},
                    "VisibilityConfig": {**visibility, "MetricName": f"{name}-rate-per-ip"},
                }],
            },
        },
        "WebAclAssociation": {
            "Type": "AWS::WAFv2::WebACLAssociation",
            "Condition": "UsingWaf",
            "Properties": {
                # RestAPI.Stage: SAM's reference to the stage it generates,
                # which also makes the association wait for the stage.
                "ResourceArn": {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::"
                                           "/restapis/${RestAPI}/stages/${RestAPI.Stage}"},
                "WebACLArn": {"Fn::GetAtt": ["WebAcl", "Arn"]},
            },
        },
    }


def conditions():
    return {
        "ReservingConcurrency": {"Fn::Equals": [{"Ref": "ReserveConcurrency"}, "true"]},
        "UsingWaf": {"Fn::Not": [{"Fn::Equals": [{"Ref": "WafRateLimitPerIp"}, "0"]}]},
    }
