"""What a cold start loads: the authorizer's whole path (importing app, then
allowing a live token against DynamoDB) in a fresh interpreter that has
every package installed, checked by its sys.modules. The second factors'
packages may load with their routes only."""
import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import PASSWORD, ROOT
from deploy import tables
from servers import FakeAWS

# The second factors' packages and what they bring (fido2's cryptography
# and its cffi; pyOpenSSL, which botocore would load), and our modules that
# load them.
SECOND_FACTORS = ("cryptography", "OpenSSL", "pyotp", "fido2", "segno", "cffi",
                  "_cffi_backend", "chalicelib.totp",
                  "chalicelib.passkeys", "chalicelib.service.factors",
                  "chalicelib.service.factor_logins")

# Run in the child: the handlers invoked as Lambda invokes them.
CHILD = """
import json, sys, uuid

class Context:
    function_name, memory_limit_in_mb = "cold", 512
    aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return 10000

import app
answer = {}
if sys.argv[1] == "authorizer":
    event = {"type": "TOKEN", "authorizationToken": "Bearer " + sys.argv[2],
             "methodArn": "arn:aws:execute-api:us-east-1:123456789012:a/local/GET/x"}
    policy = app.token_authorizer(event, Context())["policyDocument"]
    answer["effect"] = policy["Statement"][0]["Effect"]
else:
    event = {"resource": sys.argv[2], "path": sys.argv[2], "httpMethod": "POST",
             "headers": {"Content-Type": "application/json"}, "multiValueHeaders": {},
             "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "pathParameters": None, "stageVariables": None, "isBase64Encoded": False,
             "body": "{}", "requestContext": {"resourcePath": sys.argv[2], "httpMethod": "POST",
             "path": sys.argv[2], "stage": "local", "requestId": "r",
             "identity": {"sourceIp": "192.0.2.1"}}}
    answer["status"] = app.app(event, Context())["statusCode"]
answer["modules"] = sorted(sys.modules)
print(json.dumps(answer))
"""


@pytest.fixture
def served(monkeypatch, table_names):
    """moto's server with the tables and a user (named anew: moto's state
    outlives the server in this process); the environment a child process
    needs to reach it. Returns the user's token."""
    from chalicelib import aws, service

    server = FakeAWS().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.endpoint)
    for kind, variable in tables.VARIABLES.items():
        monkeypatch.setenv(variable, table_names[kind])
    aws.reset()
    try:
        tables.create_tables(aws.dynamodb(), table_names)
        name = "cold" + uuid.uuid4().hex[:8]
        service.account.signup(name, f"{name}@example.com", PASSWORD)
        yield service.login.with_password(name, PASSWORD, "cold", "192.0.2.1")["token"]
    finally:
        aws.reset()
        server.stop()


def fresh(*argv):
    run = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=ROOT, env=dict(os.environ),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def loaded(modules):
    return sorted(m for m in modules if any(m == name or m.startswith(name + ".")
                                            for name in SECOND_FACTORS))


def test_the_authorizers_cold_path_loads_nothing_of_the_second_factors(served):
    answer = fresh("authorizer", served)
    assert answer["effect"] == "Allow"
    assert "boto3" in answer["modules"] and "jwt" in answer["modules"]
    assert loaded(answer["modules"]) == []


def test_a_passkey_route_loads_its_packages_in_the_same_interpreter(served):
    """The check above sees these packages when they do load."""
    answer = fresh("route", "/api/v1/login/passkey/options")
    assert answer["status"] == 200
    assert {"fido2", "cryptography", "chalicelib.passkeys"} <= set(loaded(answer["modules"]))
