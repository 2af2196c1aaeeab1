"""The deployment: `make package`, its template, roles and secret, and what its zip holds."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT
from deploy import gateway_responses as gateway_responses_module
from deploy import tables

BUILD = os.path.join(ROOT, "build")


@pytest.fixture(scope="session")
def template():
    run = subprocess.run(["make", "--no-print-directory", "package"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(os.path.join(BUILD, "sam.json"), encoding="utf-8") as f:
        return json.load(f)


def resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def definition(template):
    return template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]


def test_cfn_lint_reports_no_errors(template):
    run = subprocess.run([os.path.join(ROOT, ".venv", "bin", "cfn-lint"),
                          os.path.join(BUILD, "sam.json")], capture_output=True, text=True)
    assert run.returncode & 2 == 0, run.stdout  # bit 2 is "errors"


def test_both_tables_are_built_from_the_one_definition(template):
    found = resources(template, "AWS::DynamoDB::Table")
    names = tables.stage_table_names(ROOT, "dev")
    for kind, resource in (("users", found["UsersTable"]), ("tokens", found["TokensTable"])):
        props = resource["Properties"]
        assert props["TableName"] == names[kind]
        assert props["KeySchema"] == tables.DEFINITIONS[kind]["KeySchema"]
        assert props["AttributeDefinitions"] == tables.DEFINITIONS[kind]["AttributeDefinitions"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def test_the_authorizer_result_is_never_cached(template):
    body = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    authorizer = body["securityDefinitions"]["token_authorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["authorizerResultTtlInSeconds"] == 0


def test_every_token_route_uses_the_authorizer(template):
    paths = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    open_routes = {("/", "get"), ("/api/v1/signup", "post"), ("/api/v1/login", "post"),
                   ("/api/v1/openapi.json", "get")}
    for path, methods in paths.items():
        for method, spec in methods.items():
            if method == "options" or (path, method) in open_routes:
                continue
            assert spec.get("security") == [{"token_authorizer": []}], (path, method)


def gateway_responses(template):
    return definition(template)["x-amazon-apigateway-gateway-responses"]


def test_gateway_responses_live_inside_the_api_definition(template):
    """A standalone AWS::ApiGateway::GatewayResponse would reach the stage
    only with some later, unrelated redeployment; inside the definition,
    changing one changes the definition, and SAM redeploys."""
    assert resources(template, "AWS::ApiGateway::GatewayResponse") == {}
    assert gateway_responses(template) == gateway_responses_module.swagger()
    assert set(gateway_responses(template)) == set(gateway_responses_module.RESPONSES)


def test_gateway_responses_speak_the_error_shape(template):
    found = gateway_responses(template)
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED"} <= set(found)
    unauthorized = found["UNAUTHORIZED"]
    assert unauthorized["statusCode"] == "401"
    assert unauthorized["responseParameters"]["gatewayresponse.header.WWW-Authenticate"] == "'Bearer'"
    for response in found.values():
        assert "gatewayresponse.header.Access-Control-Allow-Origin" in response["responseParameters"]
        body = response["responseTemplates"]["application/json"]
        assert body.startswith('{"error": "') and '"message": ' in body
        # A fixed message: API Gateway's own can quote the Authorization header.
        assert "$context" not in body
        assert set(json.loads(body)) == {"error", "message"}


@pytest.mark.parametrize("kind", ["AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"])
def test_an_authorizer_without_a_verdict_is_a_503_with_retry_after(template, kind):
    """A Lambda authorizer that raises gets one of these (500 by default)."""
    response = gateway_responses(template)[kind]
    assert response["statusCode"] == "503"
    assert response["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert json.loads(response["responseTemplates"]["application/json"])["error"] == \
        "service_unavailable"


def test_a_throttled_request_is_a_429_in_the_error_shape(template):
    response = gateway_responses(template)["THROTTLED"]
    assert response["statusCode"] == "429"
    assert response["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert json.loads(response["responseTemplates"]["application/json"])["error"] == \
        "too_many_requests"


def test_every_gateway_response_forbids_caching(template):
    found = gateway_responses(template)
    assert len(found) == 8
    for response in found.values():
        assert response["responseParameters"]["gatewayresponse.header.Cache-Control"] == \
            "'no-store'"


def test_functions_are_sized_and_named(template):
    api = template["Resources"]["APIHandler"]["Properties"]
    authorizer = template["Resources"]["TokenAuthorizer"]["Properties"]
    assert api["MemorySize"] == 1769 and authorizer["MemorySize"] == 512
    assert api["Timeout"] <= 29  # API Gateway's own integration limit
    assert api["FunctionName"] == "login-service-dev-api"
    logs = resources(template, "AWS::Logs::LogGroup")
    assert {g["Properties"]["LogGroupName"] for g in logs.values()
            if g["Properties"]["LogGroupName"].startswith("/aws/lambda/")} == {
        "/aws/lambda/login-service-dev-api", "/aws/lambda/login-service-dev-authorizer"}


def test_no_secret_travels_in_the_template_or_the_zip(template):
    for function in ("APIHandler", "TokenAuthorizer"):
        env = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert "JWT_SECRET" not in env and env["JWT_SECRET_PARAMETER"] == "/login-service/dev/jwt-secret"
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        names = z.namelist()
    assert not any(n.startswith((".local", ".chalice", "tests/", "deploy/", "devserver/"))
                   for n in names)
    assert {"app.py", "chalicelib/common-passwords.txt.gz"} <= set(names)


def test_the_deployment_zip_is_small_because_boto3_comes_from_the_runtime(template):
    assert os.path.getsize(os.path.join(BUILD, "deployment.zip")) < 1024 * 1024
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        assert not any(n.startswith(("boto3/", "botocore/")) for n in z.namelist())


def test_no_role_allows_a_bare_wildcard(template):
    for role in resources(template, "AWS::IAM::Role").values():
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                assert statement["Resource"] != "*"
                assert "*" not in statement["Action"]


def test_the_records_that_must_expire_carry_the_tables_ttl_attribute(api, dynamodb, table_names):
    """DynamoDB deletes by the attribute the tables name (deploy/tables.py);
    the stores write their expiry under that very name, in epoch seconds."""
    import time

    api.user("alice")
    assert api.login("alice", "a wrong password").status == 401
    tokens = dynamodb.scan(TableName=table_names["tokens"])["Items"]
    attempts = [i for i in dynamodb.scan(TableName=table_names["users"])["Items"]
                if i["pk"]["S"].startswith("attempts#")]
    assert len(tokens) == 1 and len(attempts) == 1
    for item in tokens + attempts:
        assert float(item[tables.TTL_ATTRIBUTE]["N"]) > time.time()


# Run in a fresh interpreter that sees only the unpacked zip, boto3 (as the
# Lambda runtime provides it) and the standard library: imports the app as
# Lambda does, invokes both handlers with the events on stdin, and prints
# the statuses and every file under the zip's folder that Python imported or
# opened (data files such as page.html included).
PROBE = r"""
import json, os, sys
task, runtime = map(os.path.realpath, sys.argv[1:3])
sys.dont_write_bytecode = True  # as on Lambda's read-only /var/task
sys.path[:0] = [task, runtime]
opened = set()
sys.addaudithook(lambda event, args: opened.add(args[0])
                 if event == "open" and isinstance(args[0], str) else None)

class Context:
    function_name, memory_limit_in_mb, aws_request_id = "probe", 512, "probe"

    def get_remaining_time_in_millis(self):
        return 10000

import app
calls = json.load(sys.stdin)
answer = app.token_authorizer(calls["authorizer"], Context())
statuses = [answer["policyDocument"]["Statement"][0]["Effect"]]
statuses += [app.app(event, Context())["statusCode"] for event in calls["api"]]
used = {m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
used = {os.path.relpath(os.path.realpath(p), task) for p in used | opened}
print(json.dumps({"statuses": statuses, "used": sorted(p for p in used if not p.startswith(".."))}))
"""


@pytest.fixture(scope="module")
def lambda_run(template, tmp_path_factory):
    """(statuses, files used) of the probe against the built zip: a deny for
    a malformed token, and the routes that load code lazily (the sessions
    page, the OpenAPI document, validation with the common-password list)."""
    import bench

    tmp_path = tmp_path_factory.mktemp("lambda")
    task = tmp_path / "task"
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        z.extractall(task)
    runtime = bench.lambda_runtime(str(tmp_path / "runtime"))
    signup = json.dumps({"username": "x", "email": "no", "password": "password123"})
    page = bench.proxy_event("GET", "/", None)
    page["headers"] = {**page["headers"], "Accept": "text/html"}
    calls = {
        "authorizer": {"type": "TOKEN", "authorizationToken": "Bearer not.a.token",
                       "methodArn": "arn:aws:execute-api:us-east-1:123456789012:probe/api/GET/"
                                    "api/v1/users/me"},
        "api": [bench.proxy_event("GET", "/", None),
                page,
                bench.proxy_event("GET", "/api/v1/openapi.json", None),
                bench.proxy_event("POST", "/api/v1/signup", None, signup)],
    }
    # Nowhere to reach: none of these requests may need storage.
    env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_FUNCTION_NAME": "probe",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "JWT_SECRET": "s" * 48,
           "USERS_TABLE": "probe-users", "TOKENS_TABLE": "probe-tokens"}
    run = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(task), runtime],
                         input=json.dumps(calls), capture_output=True, text=True, env=env,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.splitlines()[-1])  # after the service's log lines
    return found["statuses"], set(found["used"])


def shipped(names):
    """The zip's files, without its bytecode and the libraries' metadata."""
    return {n for n in names if not n.endswith("/") and "__pycache__" not in n
            and ".dist-info/" not in n}


def test_the_zip_holds_exactly_the_project_files_the_functions_use(lambda_run):
    """Every file of app.py and chalicelib/ in the zip is imported or read
    when the functions run, and everything they use comes from the zip:
    nothing that only builds, deploys or serves locally ships to Lambda."""
    statuses, used = lambda_run
    assert statuses == ["Deny", 200, 200, 200, 422]
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        ours = {n for n in shipped(z.namelist()) if n == "app.py" or n.startswith("chalicelib/")}
    assert {n for n in shipped(used) if n == "app.py" or n.startswith("chalicelib/")} == ours


def test_every_module_and_package_at_the_top_of_the_zip_is_loaded_by_the_functions(lambda_run):
    """The libraries included: none ships for a build step or a test."""
    _, used = lambda_run
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        top = {n.split("/")[0] for n in shipped(z.namelist())}
    assert top <= {n.split("/")[0] for n in used}
