"""The deployed stage under load and under watch: its name, throttling,
reserved concurrency, optional WAF rule, access log, metrics, alarms and
tracing, as `make package` renders them (deploy/protection.py,
deploy/observability.py)."""
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import PASSWORD, ROOT
from deploy import gateway_responses, observability, protection, stages, template as merge
from faults import client_error, inject
from test_deploy import definition, resources, template  # noqa: F401 - the fixture

VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def properties(template, name):
    return template["Resources"][name]["Properties"]


def api_stage(template):
    return properties(template, "RestAPI")


@pytest.fixture(scope="module")
def prod(template):  # noqa: F811 - dev's package first, to see that prod's leaves it be
    """The prod stage's package, built by `make package STAGE=prod`."""
    run = subprocess.run(["make", "--no-print-directory", "package", "STAGE=prod"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return pathlib.Path(stages.build_dir("prod"), "sam.json")


# --- the stage's name ---------------------------------------------------

def test_the_api_gateway_stage_is_named_after_the_chalice_stage(template):
    assert api_stage(template)["StageName"] == "dev"
    assert template["Outputs"]["EndpointURL"]["Value"]["Fn::Sub"].endswith(
        "/dev/")


def test_the_prod_template_is_cfn_lint_clean_and_serves_under_prod(prod):
    run = subprocess.run([os.path.join(VENV_BIN, "cfn-lint"), str(prod)],
                         capture_output=True, text=True)
    assert run.returncode & 2 == 0, run.stdout
    built = json.loads(prod.read_text())
    assert api_stage(built)["StageName"] == "prod"
    assert built["Outputs"]["EndpointURL"]["Value"]["Fn::Sub"].endswith("/prod/")


def test_each_stage_builds_into_its_own_folder(template, prod):  # noqa: F811
    """Packaging prod left dev's template and zip in build/dev/ as they were."""
    dev = pathlib.Path(stages.build_dir("dev"))
    assert json.loads((dev / "sam.json").read_text()) == template
    assert api_stage(template)["StageName"] == "dev"
    assert (dev / "deployment.zip").is_file() and (prod.parent / "deployment.zip").is_file()


# --- overload -------------------------------------------------------------

def decoded(resource_path):
    """CloudFormation's spelling of a resource path: "/~1api~1v1" is /api/v1."""
    return resource_path[1:].replace("~1", "/")


def test_the_stage_throttles_every_method_by_default(template):
    settings = api_stage(template)["MethodSettings"]
    default = [s for s in settings if (s["HttpMethod"], s["ResourcePath"]) == ("*", "/*")]
    assert len(default) == 1
    assert default[0]["ThrottlingRateLimit"] == protection.DEFAULT_LIMIT.rate
    assert default[0]["ThrottlingBurstLimit"] == protection.DEFAULT_LIMIT.burst


def test_login_signup_and_introspection_are_throttled_harder_than_the_rest(template):
    settings = {(s["HttpMethod"], decoded(s["ResourcePath"])): s
                for s in api_stage(template)["MethodSettings"]}
    paths = definition(template)["paths"]
    for route in (("POST", "/api/v1/login"), ("POST", "/api/v1/signup"),
                  ("POST", "/api/v1/introspect")):
        method, path = route
        assert method.lower() in paths[path], route  # a route the API really has
        assert settings[route]["ThrottlingRateLimit"] < protection.DEFAULT_LIMIT.rate
        assert settings[route]["ThrottlingBurstLimit"] < protection.DEFAULT_LIMIT.burst


@pytest.mark.parametrize("route", [("POST", "/api/v1/password/forgot"),
                                   ("POST", "/api/v1/password/reset"),
                                   ("POST", "/api/v1/email/verify")])
def test_the_mail_routes_anyone_can_call_are_throttled_as_login(template, route):
    """Each asks the mailer for a link to any address, or spends one,
    without a token: a flood of them is held to login's limit."""
    settings = {(s["HttpMethod"], decoded(s["ResourcePath"])): s
                for s in api_stage(template)["MethodSettings"]}
    method, path = route
    assert method.lower() in definition(template)["paths"][path]
    assert "security" not in definition(template)["paths"][path][method.lower()]
    login = settings[("POST", "/api/v1/login")]
    assert settings[route]["ThrottlingRateLimit"] <= login["ThrottlingRateLimit"]
    assert settings[route]["ThrottlingBurstLimit"] <= login["ThrottlingBurstLimit"]


def routes_taking_a_password():
    """(method, path) of each route of app.py whose body has a password
    field: each one runs bcrypt, to check the password or to hash it."""
    from app import app
    from chalicelib import schemas

    return {(method, path) for path, methods in app.routes.items()
            for method, entry in methods.items()
            if entry.view_function.contract.body and any(
                "password" in field for field in
                getattr(schemas, entry.view_function.contract.body)._declared_fields)}


def test_every_route_that_runs_bcrypt_buys_no_more_of_it_than_login(template):
    """A password change runs bcrypt twice and deletion once, behind a token
    that any number of requests may carry: each route that takes a password
    gets a throttle of its own, in bcrypt runs no looser than login's."""
    settings = {(s["HttpMethod"], decoded(s["ResourcePath"])): s
                for s in api_stage(template)["MethodSettings"]}
    routes = routes_taking_a_password()
    assert routes >= {("POST", "/api/v1/login"), ("POST", "/api/v1/signup"),
                      ("POST", "/api/v1/users/me/password"), ("DELETE", "/api/v1/users/me")}
    login = settings[("POST", "/api/v1/login")]
    assert login["ThrottlingRateLimit"] == 10 and login["ThrottlingBurstLimit"] == 20
    for route in routes:
        runs = 2 if route == ("POST", "/api/v1/users/me/password") else 1
        assert route in settings, route
        assert settings[route]["ThrottlingRateLimit"] * runs <= login["ThrottlingRateLimit"]
        assert settings[route]["ThrottlingBurstLimit"] * runs <= login["ThrottlingBurstLimit"]
    # The template's list is the routes': a new one (a reset, a second
    # factor) cannot ship on the stage's default.
    assert set(protection.BCRYPT_ROUTES) == routes


def test_no_method_writes_execution_logs_or_request_data(template):
    """A data trace logs bodies and headers: passwords and tokens."""
    for setting in api_stage(template)["MethodSettings"]:
        assert setting["DataTraceEnabled"] is False and setting["LoggingLevel"] == "OFF"


@pytest.mark.parametrize("function,name", [("APIHandler", "api_handler"),
                                           ("TokenAuthorizer", "token_authorizer"),
                                           ("Mailer", "mailer")])
def test_reserved_concurrency_is_the_stages_and_off_unless_the_parameter_says(
        template, function, name):
    reserved = properties(template, function)["ReservedConcurrentExecutions"]
    with open(os.path.join(ROOT, ".chalice", "config.json"), encoding="utf-8") as f:
        dev = json.load(f)["stages"]["dev"]
    expected = dev["lambda_functions"].get(name, {}).get("reserved_concurrency",
                                                         dev["reserved_concurrency"])
    assert reserved == {"Fn::If": ["ReservingConcurrency", expected, {"Ref": "AWS::NoValue"}]}
    # A new account's quota is 10 and must keep 10 unreserved: by default,
    # nothing is reserved, so the stack deploys anywhere.
    assert template["Parameters"]["ReserveConcurrency"]["Default"] == "false"
    assert template["Conditions"]["ReservingConcurrency"] == {
        "Fn::Equals": [{"Ref": "ReserveConcurrency"}, "true"]}


def test_the_authorizer_has_capacity_of_its_own_in_every_deployed_stage():
    for stage in ("dev", "prod"):
        reserved = protection.reserved_concurrency(ROOT, stage)
        assert reserved["TokenAuthorizer"] >= 1 and reserved["APIHandler"] >= 1, stage


def test_the_waf_rule_exists_only_when_the_parameter_enables_it(template):
    for name in ("WebAcl", "WebAclAssociation"):
        assert template["Resources"][name]["Condition"] == "UsingWaf"
    assert template["Parameters"]["WafRateLimitPerIp"]["Default"] == 0
    assert template["Conditions"]["UsingWaf"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WafRateLimitPerIp"}, "0"]}]}
    association = properties(template, "WebAclAssociation")
    assert "/stages/${RestAPI.Stage}" in association["ResourceArn"]["Fn::Sub"]


def test_the_waf_rule_limits_each_client_ip_and_answers_429_in_the_error_shape(template):
    acl = properties(template, "WebAcl")
    (rule,) = acl["Rules"]
    assert rule["Statement"]["RateBasedStatement"] == {
        "Limit": {"Ref": "WafRateLimitPerIp"}, "AggregateKeyType": "IP",
        "EvaluationWindowSec": protection.WAF_WINDOW_SECONDS}
    blocked = rule["Action"]["Block"]["CustomResponse"]
    assert blocked["ResponseCode"] == 429  # never WAF's 403, which reads as a denied token
    body = acl["CustomResponseBodies"][blocked["CustomResponseBodyKey"]]
    assert body["Content"] == gateway_responses.body("THROTTLED")
    assert acl["DefaultAction"] == {"Allow": {}}


# --- what operators see ----------------------------------------------------

def test_the_access_log_is_one_json_object_with_what_operators_need(template):
    setting = api_stage(template)["AccessLogSetting"]
    fields = json.loads(setting["Format"])
    assert "\n" not in setting["Format"]
    assert {"requestId", "sourceIp", "httpMethod", "resourcePath", "status",
            "responseLatency", "responseType"} <= set(fields)
    assert fields["authorizer"]["status"] == "$context.authorizer.status"
    assert fields["authorizer"]["error"] == "$context.authorizer.error"
    assert fields["authorizer"]["user_id"] == "$context.authorizer.user_id"
    # Neither API Gateway's error message (it can quote the Authorization
    # header) nor any header at all.
    assert "$context.error.message" not in setting["Format"]
    assert "header" not in setting["Format"].lower()


def test_the_access_log_records_the_route_never_the_path_as_sent(template):
    """A path holds whatever a client put in a URL: ``DELETE /api/v1/tokens/``
    followed by the JWT itself (a token mistaken for its id) would keep a
    live token in the log for its retention."""
    setting = api_stage(template)["AccessLogSetting"]
    assert json.loads(setting["Format"])["resourcePath"] == "$context.resourcePath"
    assert re.findall(r"\$context\.[\w.]*path", setting["Format"], re.I) == [
        "$context.resourcePath"]


def test_the_access_log_goes_to_a_log_group_with_retention(template):
    setting = api_stage(template)["AccessLogSetting"]
    assert "${AccessLogs}" in setting["DestinationArn"]["Fn::Sub"]
    group = properties(template, "AccessLogs")
    assert group["RetentionInDays"] == observability.LOG_RETENTION_DAYS
    assert group["LogGroupName"] == "/aws/apigateway/login-service-dev-access"


def test_the_accounts_cloudwatch_role_is_created_only_on_request_and_outlives_the_stack(
        template):
    for name in ("ApiGatewayCloudWatchRole", "ApiGatewayAccount"):
        resource = template["Resources"][name]
        assert resource["Condition"] == "CreatingApiGatewayAccount"
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    assert template["Parameters"]["CreateApiGatewayAccount"]["Default"] == "false"


def test_the_stage_waits_for_the_account_setting_when_the_stack_creates_it(template):
    assert "ApiGatewayAccountReady" in template["Resources"]["RestAPI"]["DependsOn"]
    ready = template["Resources"]["ApiGatewayAccountReady"]["Metadata"]["Account"]
    assert ready["Fn::If"][:2] == ["CreatingApiGatewayAccount", {"Ref": "ApiGatewayAccount"}]


def filter_matches(pattern, line):
    """CloudWatch Logs' JSON filter syntax, as far as the metric filters use
    it: ``$.field = "text"``, ``$.field >= number``, joined by all ``&&`` or
    all ``||``."""
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}"), pattern
    body = body[1:-1]
    joiner = "||" if "||" in body else "&&"
    results = []
    for clause in body.split(joiner):
        field, op, value = re.fullmatch(r'\s*\$\.([\w.]+)\s*(=|>=)\s*(".*"|\d+)\s*', clause).groups()
        found = line
        for part in field.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if op == "=":
            results.append(found == json.loads(value))
        else:
            results.append(isinstance(found, (int, float)) and found >= int(value))
    return any(results) if joiner == "||" else all(results)


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="login-service")
    return lambda: [json.loads(r.getMessage()) for r in caplog.records
                    if r.name == "login-service"]


def test_each_log_metric_counts_lines_the_service_really_writes(api, dynamodb, lines,
                                                                monkeypatch):
    """Failures up to a lockout, an attempt while locked, a bug, and an
    authorizer without a verdict: each metric filter matches the very lines."""
    from chalicelib import service

    token = api.user("alice")
    for _ in range(5):
        api.login("alice", "a wrong password")
    assert api.login("alice", PASSWORD).status == 429
    with monkeypatch.context() as patched:
        patched.setattr(service.account, "me", lambda identity: 1 / 0)
        assert api.call("GET", "/api/v1/users/me", token=token).status == 500
    # The authorizer's read.
    inject(dynamodb, "BatchGetItem", lambda p: client_error("ThrottlingException"))
    assert api.call("GET", "/api/v1/users/me", token=token).status == 503
    written = lines()
    counts = {name: sum(filter_matches(metric.pattern, line) for line in written)
              for name, metric in observability.METRICS.items() if metric.log_group != "AccessLogs"}
    assert counts == {"FailedLogins": 5, "Lockouts": 1, "LockedOutAttempts": 1,
                      "AuthorizerErrors": 1, "UnhandledErrors": 1, "ServerErrors": 1,
                      "MailNotSent": 0}


def test_the_mail_metric_counts_each_message_ses_refused(api, mailbox, lines):
    import boto3

    from conftest import SENDER

    api.signup("alice")
    api.signup("bob")
    boto3.client("sesv2", region_name="us-east-1").delete_email_identity(EmailIdentity=SENDER)
    assert mailbox.deliver() == []
    metric = observability.METRICS["MailNotSent"]
    assert metric.log_group == "MailerLogs"
    assert sum(filter_matches(metric.pattern, line) for line in lines()) == 2


def test_a_failing_mailer_raises_an_alarm(template):
    alarm = properties(template, "MailerErrorsAlarm")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == \
        ("AWS/Lambda", "Errors", 1)
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "Mailer"}}]


def access_log_line(**context):
    """The access log line API Gateway writes, with ``context`` filled in."""
    text = observability.access_log_format()
    for name, value in context.items():
        text = text.replace(f'"$context.{name}"', json.dumps(value))
    return json.loads(re.sub(r'"\$context\.[\w.]+"', '"-"', text))


def test_the_throttle_metric_counts_the_stages_throttling_not_every_4xx():
    throttles = observability.METRICS["Throttles"]
    assert throttles.log_group == "AccessLogs"
    throttled = access_log_line(status="429", **{"error.responseType": "THROTTLED"})
    denied = access_log_line(status="403", **{"error.responseType": "ACCESS_DENIED"})
    locked_out = access_log_line(status="429")  # the app's own 429 for a username
    assert [filter_matches(throttles.pattern, line) for line in (throttled, denied, locked_out)] \
        == [True, False, False]


def test_every_metric_filter_reads_an_existing_log_group(template):
    filters = resources(template, "AWS::Logs::MetricFilter")
    assert len(filters) == len(observability.METRICS)
    for resource in filters.values():
        group = resource["Properties"]["LogGroupName"]["Ref"]
        assert template["Resources"][group]["Type"] == "AWS::Logs::LogGroup"


def test_every_alarm_notifies_the_optional_topic(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= len(observability.ALARMS) + 3
    topic = {"Fn::If": ["NotifyingATopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == alarm["Properties"]["OKActions"] == topic
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


def test_no_alarm_takes_4xx_for_throttling(template):
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        assert "4XXError" not in json.dumps(alarm)


def test_the_5xx_alarm_is_a_share_of_this_stages_requests(template):
    alarm = properties(template, "Api5xxRateAlarm")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    for key, name in (("errors", "5XXError"), ("requests", "Count")):
        stat = metrics[key]["MetricStat"]["Metric"]
        assert stat["MetricName"] == name
        assert {d["Name"]: d["Value"] for d in stat["Dimensions"]} == {
            "ApiName": api_stage(template)["Name"], "Stage": api_stage(template)["StageName"]}
    assert "errors / requests" in metrics["rate"]["Expression"]


@pytest.mark.parametrize("function", ["TokenAuthorizer", "APIHandler"])
def test_lambda_throttling_of_each_function_raises_an_alarm(template, function):
    alarm = properties(template, f"{function}ThrottlesAlarm")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == \
        ("AWS/Lambda", "Throttles", 1)
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]


def test_tracing_is_off_unless_the_stage_turns_on_xray(template):
    assert api_stage(template)["TracingEnabled"] is False
    for function in ("APIHandler", "TokenAuthorizer"):
        assert properties(template, function)["Tracing"] == "PassThrough"
    for role in resources(template, "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"] or \
            role is template["Resources"].get("ApiGatewayCloudWatchRole")


def test_a_traced_stage_traces_the_api_and_lets_each_function_write_traces(tmp_path):
    shutil.copytree(os.path.join(ROOT, ".chalice"), tmp_path / ".chalice")
    config = json.loads((tmp_path / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["xray"] = True
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    resources_ = merge.merge_template("dev", project_dir=str(tmp_path))["Resources"]
    assert resources_["RestAPI"]["Properties"]["TracingEnabled"] is True
    for role in ("ApiHandlerRole", "TokenAuthorizerRole"):
        assert resources_[role]["Properties"]["ManagedPolicyArns"] == [merge.XRAY_POLICY]
