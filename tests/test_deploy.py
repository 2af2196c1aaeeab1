"""The deployment: `make package`, its template, roles and secret."""
import json
import os
import subprocess
import zipfile

import pytest

from conftest import ROOT
from deploy import tables

BUILD = os.path.join(ROOT, "build")


@pytest.fixture(scope="module")
def template():
    run = subprocess.run(["make", "--no-print-directory", "package"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(os.path.join(BUILD, "sam.json"), encoding="utf-8") as f:
        return json.load(f)


def resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


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


def test_gateway_responses_speak_the_error_shape(template):
    found = {r["Properties"]["ResponseType"]: r["Properties"]
             for r in resources(template, "AWS::ApiGateway::GatewayResponse").values()}
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(found)
    unauthorized = found["UNAUTHORIZED"]
    assert unauthorized["StatusCode"] == "401"
    assert unauthorized["ResponseParameters"]["gatewayresponse.header.WWW-Authenticate"] == "'Bearer'"
    for props in found.values():
        assert props["RestApiId"] == {"Ref": "RestAPI"}
        assert "gatewayresponse.header.Access-Control-Allow-Origin" in props["ResponseParameters"]
        body = props["ResponseTemplates"]["application/json"]
        assert body.startswith('{"error": "') and '"message": ' in body
        # A fixed message: API Gateway's own can quote the Authorization header.
        assert "$context" not in body
        assert set(json.loads(body)) == {"error", "message"}


def gateway_responses(template):
    return {r["Properties"]["ResponseType"]: r["Properties"]
            for r in resources(template, "AWS::ApiGateway::GatewayResponse").values()}


@pytest.mark.parametrize("kind", ["AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"])
def test_an_authorizer_without_a_verdict_is_a_503_with_retry_after(template, kind):
    """A Lambda authorizer that raises gets one of these (500 by default)."""
    props = gateway_responses(template)[kind]
    assert props["StatusCode"] == "503"
    assert props["ResponseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert json.loads(props["ResponseTemplates"]["application/json"])["error"] == \
        "service_unavailable"


def test_every_gateway_response_forbids_caching(template):
    found = gateway_responses(template)
    assert len(found) == 7
    for props in found.values():
        assert props["ResponseParameters"]["gatewayresponse.header.Cache-Control"] == "'no-store'"


def test_functions_are_sized_and_named(template):
    api = template["Resources"]["APIHandler"]["Properties"]
    authorizer = template["Resources"]["TokenAuthorizer"]["Properties"]
    assert api["MemorySize"] == 1769 and authorizer["MemorySize"] == 512
    assert api["Timeout"] <= 29  # API Gateway's own integration limit
    assert api["FunctionName"] == "login-service-dev-api"
    logs = resources(template, "AWS::Logs::LogGroup")
    assert {g["Properties"]["LogGroupName"] for g in logs.values()} == {
        "/aws/lambda/login-service-dev-api", "/aws/lambda/login-service-dev-authorizer"}


def test_no_secret_travels_in_the_template_or_the_zip(template):
    for function in ("APIHandler", "TokenAuthorizer"):
        env = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert "JWT_SECRET" not in env and env["JWT_SECRET_PARAMETER"] == "/login-service/dev/jwt-secret"
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        names = z.namelist()
    assert not any(n.startswith((".local", ".chalice", "tests/", "deploy/")) for n in names)
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
