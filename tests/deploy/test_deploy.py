"""The deployment: `make package`, its template, roles and secret, and what its zip holds."""
import base64
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

import apigateway
import factors_walk
from conftest import PASSWORD, PUBLIC_URL, ROOT, SENDER
from deploy import gateway_responses as gateway_responses_module
from deploy import mail, stages, tables
from servers import FakeAWS

BUILD = stages.build_dir("dev")


@pytest.fixture(scope="session")
def template():
    run = subprocess.run(["make", "--no-print-directory", "package", "STAGE=dev"], cwd=ROOT,
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


def test_every_table_is_built_from_the_one_definition(template):
    found = resources(template, "AWS::DynamoDB::Table")
    names = tables.stage_table_names(ROOT, "dev")
    assert set(found) == {"UsersTable", "TokensTable", "EventsTable", "MailTable"}
    for kind, resource in (("users", found["UsersTable"]), ("tokens", found["TokensTable"]),
                           ("events", found["EventsTable"]), ("mail", found["MailTable"])):
        props = resource["Properties"]
        assert props["TableName"] == names[kind]
        assert props["KeySchema"] == tables.DEFINITIONS[kind]["KeySchema"]
        assert props["AttributeDefinitions"] == tables.DEFINITIONS[kind]["AttributeDefinitions"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def test_only_the_mail_table_streams_and_only_its_new_items(template):
    """The mailer reads a new item's image; no record carries an old one,
    and no other table's changes leave DynamoDB."""
    found = {name: r["Properties"].get("StreamSpecification")
             for name, r in resources(template, "AWS::DynamoDB::Table").items()}
    assert found == {"UsersTable": None, "TokensTable": None, "EventsTable": None,
                     "MailTable": {"StreamViewType": "NEW_IMAGE"}}


def test_the_mailer_is_invoked_with_the_outboxs_new_items_only(template):
    (mapping,) = resources(template, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["FunctionName"] == {"Ref": "Mailer"}
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["MailTable", "StreamArn"]}
    (only,) = props["FilterCriteria"]["Filters"]
    assert json.loads(only["Pattern"]) == {"eventName": ["INSERT"]}
    # A failing item is found by halving its batch, then skipped after a
    # few tries, instead of holding up the mail behind it for a day.
    assert props["BisectBatchOnFunctionError"] is True
    assert 0 <= props["MaximumRetryAttempts"] <= 3
    assert 1 <= props["BatchSize"] <= 100
    # From the oldest record kept: mail asked for before the mapping
    # existed still goes (the mailer takes each item once).
    assert props["StartingPosition"] == "TRIM_HORIZON"


def test_the_sender_reaches_the_mailer_alone_and_the_page_address_every_function(template):
    """EMAIL_FROM only where mail is sent; PUBLIC_URL wherever a cold start
    checks it (every function: the API handler's passkeys are bound to it)."""
    for name, setting in mail.PARAMETERS.items():
        assert "Default" not in template["Parameters"][name]  # no stack without them
        for function, resource in resources(template, "AWS::Serverless::Function").items():
            variables = resource["Properties"]["Environment"]["Variables"]
            if function == "Mailer" or name == "PublicUrl":
                assert variables[setting.variable] == {"Ref": name}, function
            else:
                assert setting.variable not in variables, function


@pytest.mark.parametrize("name,value,accepted", [
    ("EmailFrom", "no-reply@login.example", True),
    ("EmailFrom", "Login <no-reply@login.example>", False),
    ("EmailFrom", "a@example.com, b@example.com", False),
    ("PublicUrl", "https://login.example/", True),
    ("PublicUrl", "https://login.example/app/", True),
    ("PublicUrl", "http://login.example/", False),
    ("PublicUrl", "https://login.example/#reset=x", False),
])
def test_a_mail_parameter_takes_what_the_service_accepts(template, name, value, accepted):
    """CloudFormation refuses a value the functions would refuse at their
    first message (AllowedPattern, anchored at both ends as CloudFormation
    reads it)."""
    from chalicelib import config

    pattern = template["Parameters"][name]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted
    reader = {"EmailFrom": config._email_from,
              "PublicUrl": lambda url: config.public_url({"PUBLIC_URL": url})}[name]
    if accepted:
        reader(value)
    else:
        with pytest.raises(config.ConfigurationError):
            reader(value)


def test_the_authorizer_result_is_never_cached(template):
    body = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    authorizer = body["securityDefinitions"]["token_authorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["authorizerResultTtlInSeconds"] == 0


def test_every_token_route_uses_the_authorizer(template):
    paths = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    # Introspection's callers are resource servers, with client credentials
    # the view checks itself (HTTP Basic), not a user's token.
    # A link's secret is what proves a person in the mail routes; a login's
    # second step and a passkey login come before any token.
    open_routes = {("/", "get"), ("/api/v1/signup", "post"), ("/api/v1/login", "post"),
                   ("/api/v1/openapi.json", "get"), ("/api/v1/introspect", "post"),
                   ("/api/v1/password/forgot", "post"), ("/api/v1/password/reset", "post"),
                   ("/api/v1/email/verify", "post"), ("/api/v1/login/mfa", "post"),
                   ("/api/v1/login/passkey/options", "post"), ("/api/v1/login/passkey", "post")}
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


def test_every_gateway_response_says_nosniff(template):
    for kind, response in gateway_responses(template).items():
        assert response["responseParameters"][
            "gatewayresponse.header.X-Content-Type-Options"] == "'nosniff'", kind


def test_functions_are_sized_and_named(template):
    api = template["Resources"]["APIHandler"]["Properties"]
    authorizer = template["Resources"]["TokenAuthorizer"]["Properties"]
    assert api["MemorySize"] == 1769 and authorizer["MemorySize"] == 512
    assert api["Timeout"] <= 29  # API Gateway's own integration limit
    assert api["FunctionName"] == "login-service-dev-api"
    mailer = template["Resources"]["Mailer"]["Properties"]
    assert mailer["FunctionName"] == "login-service-dev-mailer" and mailer["MemorySize"] == 512
    logs = resources(template, "AWS::Logs::LogGroup")
    assert {g["Properties"]["LogGroupName"] for g in logs.values()
            if g["Properties"]["LogGroupName"].startswith("/aws/lambda/")} == {
        "/aws/lambda/login-service-dev-api", "/aws/lambda/login-service-dev-authorizer",
        "/aws/lambda/login-service-dev-mailer"}


def test_no_secret_travels_in_the_template_or_the_zip(template):
    for function in ("APIHandler", "TokenAuthorizer"):
        env = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert "JWT_SECRET" not in env and env["JWT_SECRET_PARAMETER"] == "/login-service/dev/jwt-secret"
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        names = z.namelist()
    assert not any(n.startswith((".local", ".chalice", "tests/", "deploy/", "devserver/",
                                 "examples/")) for n in names)
    assert {"app.py", "chalicelib/common-passwords.txt.gz"} <= set(names)


def test_the_deployment_zip_is_within_its_bound_because_boto3_comes_from_the_runtime(template):
    from deploy import package

    assert os.path.getsize(os.path.join(BUILD, "deployment.zip")) < package.ZIP_BOUND
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        assert not any(n.startswith(("boto3/", "botocore/")) for n in z.namelist())


def test_the_authorizers_arn_is_exported_under_the_stacks_name(template):
    """Other stacks of the account attach it by this export (Fn::ImportValue),
    or read it from the stack's outputs."""
    output = template["Outputs"]["TokenAuthorizerArn"]
    assert output["Value"] == {"Fn::GetAtt": ["TokenAuthorizer", "Arn"]}
    assert output["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-TokenAuthorizerArn"}


def test_the_accounts_rest_apis_may_invoke_the_authorizer_and_nothing_else(template):
    permissions = [r["Properties"] for r in resources(template, "AWS::Lambda::Permission").values()
                   if r["Properties"]["FunctionName"] == {"Fn::GetAtt": ["TokenAuthorizer", "Arn"]}]
    shared = [p for p in permissions if "authorizers" in json.dumps(p["SourceArn"])]
    assert len(shared) == 1
    (permission,) = shared
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert set(permission["SourceArn"]) == {"Fn::Sub"}
    assert "SourceAccount" not in permission or permission["SourceAccount"] == {
        "Ref": "AWS::AccountId"}


def arn_like(pattern, arn):
    """IAM's ArnLike, which a Lambda permission's SourceArn is checked with:
    the six colon-separated parts of an ARN compared one by one (the last,
    the resource, keeps any further colons), case-sensitively, where ``*``
    in the pattern stands for any run of characters, ``/`` included, and
    ``?`` for exactly one character."""
    parts, against = pattern.split(":", 5), arn.split(":", 5)
    if len(parts) != 6 or len(against) != 6:
        return False
    for part, value in zip(parts, against):
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in part)
        if not re.fullmatch(regex, value, re.S):
            return False
    return True


def test_arn_like_is_iams_matching():
    assert arn_like("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y")
    assert arn_like("arn:aws:s3:::b/??", "arn:aws:s3:::b/xy")
    assert not arn_like("arn:aws:s3:::b/??", "arn:aws:s3:::b/x")
    assert not arn_like("arn:aws:s3:::b/*", "arn:aws:s3:::B/x")
    assert not arn_like("arn:aws:*", "arn:aws:s3:::b")  # each part separately


ACCOUNT, REGION = "123456789012", "us-east-1"


def execute_api(resource, account=ACCOUNT, region=REGION):
    return f"arn:aws:execute-api:{region}:{account}:{resource}"


def test_the_shared_permission_matches_authorizer_arns_and_never_a_methods(template):
    """API Gateway calls an authorizer as ``<api-id>/authorizers/<id>`` and a
    backend as ``<api-id>/<stage>/<METHOD>/<path>``: were a method ARN to
    match, any API of the account could wire the authorizer in as a backend
    and answer anyone who a token belongs to, with no client credentials."""
    (permission,) = [r["Properties"] for r in
                     resources(template, "AWS::Lambda::Permission").values()
                     if "authorizers" in json.dumps(r["Properties"]["SourceArn"])]
    pattern = permission["SourceArn"]["Fn::Sub"].replace("${AWS::Partition}", "aws").replace(
        "${AWS::Region}", REGION).replace("${AWS::AccountId}", ACCOUNT)
    for resource in ("abcde12345/authorizers/gfi4n3", "o81lxisefl/authorizers/0h6gwj"):
        assert arn_like(pattern, execute_api(resource)), resource
    methods = [f"abcde12345/{stage}/{method}{path}"
               for stage in ("prod", "dev", "test-invoke-stage", "a")
               for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*")
               for path in ("/", "/a", "/who", "/authorizers/who", "/authorizers/gfi4n3",
                            "/api/v1/authorizers/gfi4n3", "/x/authorizers/abcdef/")]
    assert "abcde12345/prod/GET/authorizers/who" in methods
    for resource in methods:
        assert not arn_like(pattern, execute_api(resource)), resource
    for arn in (execute_api("abcde12345/authorizers/gfi4n3", account="999999999999"),
                execute_api("abcde12345/authorizers/gfi4n3", region="eu-west-1"),
                "arn:aws:apigateway:us-east-1:123456789012:abcde12345/authorizers/gfi4n3"):
        assert not arn_like(pattern, arn), arn
    # What no ArnLike pattern can tell apart (docs/security.md, limits): a
    # stage named "authorizers" and a method and path of six characters.
    assert arn_like(pattern, execute_api("abcde12345/authorizers/GET/ab"))


def test_a_zip_holding_the_example_app_is_refused(tmp_path):
    from deploy import package

    path = tmp_path / "deployment.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("app.py", "")
        z.writestr("examples/orders_api/app.py", "")
    with pytest.raises(SystemExit, match="examples/orders_api/app.py"):
        package.compile_zip(str(path), runtime=sys.version_info[:2])


def test_no_role_allows_a_bare_wildcard(template):
    """(The optional account-wide API Gateway logging role has only AWS's
    managed policy: API Gateway writes every API's logs of the account.)"""
    for role in resources(template, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
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


SIGNING_SECRET = "deployed-secret-" + "0123456789abcdef" * 3
NEW_PASSWORD = "another horse battery"


# The mail parameters the stack is given.
MAIL_PARAMETERS = {"EmailFrom": SENDER, "PublicUrl": PUBLIC_URL}
# The mailer's role may not read the signing secret: a parameter nobody can
# read must not stop it.
UNREADABLE_SECRET = {"JWT_SECRET_PARAMETER": "/login-service/dev/not-the-mailers"}


@pytest.fixture(scope="module")
def deployed(template, tmp_path_factory):
    """The built zip behind API Gateway, both as the template defines them
    (tests/deploy/apigateway.py), on a fake AWS with the dev stage's tables
    (the mail table's stream on), signing secret in SSM and sender verified
    in SES: every route of the app, driven in turn, then the mail table's
    stream handed to the mailer function (answers["mailer stream"]).

    Returns the gateway, the walk's answers by name, the zip's files the
    functions used, and each function's log."""
    import bench

    tmp = tmp_path_factory.mktemp("lambda")
    task, _, runtime = bench.lambda_like_dirs(str(tmp))
    server = FakeAWS().start()
    endpoint = server.endpoint
    runtimes = {}
    try:
        functions = resources(template, "AWS::Serverless::Function")
        env = functions["APIHandler"]["Properties"]["Environment"]["Variables"]
        tables.create_tables(server.client("dynamodb", apigateway.REGION),
                             {kind: env[variable] for kind, variable in tables.VARIABLES.items()},
                             streams=True)
        server.client("ssm", apigateway.REGION).put_parameter(
            Name=env["JWT_SECRET_PARAMETER"], Value=SIGNING_SECRET, Type="SecureString")
        server.client("sesv2", apigateway.REGION).create_email_identity(EmailIdentity=SENDER)
        for name, function in functions.items():
            runtimes[name] = apigateway.Runtime(
                function, task, runtime, endpoint, tmp / f"{name}.log", MAIL_PARAMETERS,
                UNREADABLE_SECRET if name == "Mailer" else None)
        gateway = apigateway.Gateway(template, runtimes)
        answers = walk(gateway, lambda username: grant_admin(endpoint, username),
                       lambda name: create_client(endpoint, name))
        answers["mailer stream"] = mail_through_the_stream(server, template, runtimes["Mailer"])
        used = set().union(*(r.finish() for r in runtimes.values()))
        return gateway, answers, used, {name: r.output() for name, r in runtimes.items()}
    finally:
        for running in runtimes.values():
            if running.process.poll() is None:
                running.process.kill()
        server.stop()


def stream_records(server, template):
    """The mail table's stream records, as its event source mapping hands
    them to the mailer: from its starting position, through its filter, in
    the shape of a Lambda event's records."""
    (mapping,) = [r["Properties"] for r in
                  resources(template, "AWS::Lambda::EventSourceMapping").values()]
    table = template["Resources"][mapping["EventSourceArn"]["Fn::GetAtt"][0]]
    dynamodb = server.client("dynamodb", apigateway.REGION)
    arn = dynamodb.describe_table(TableName=table["Properties"]["TableName"])["Table"][
        "LatestStreamArn"]
    streams = server.client("dynamodbstreams", apigateway.REGION)
    wanted = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"],
            ShardIteratorType=mapping["StartingPosition"])["ShardIterator"]
        for record in streams.get_records(ShardIterator=iterator)["Records"]:
            if any(record["eventName"] in f["eventName"] for f in wanted):
                change = dict(record["dynamodb"])
                change["ApproximateCreationDateTime"] = int(
                    change["ApproximateCreationDateTime"].timestamp())
                records.append({**record, "dynamodb": change, "eventSourceARN": arn})
    return records, mapping["BatchSize"]


def mail_through_the_stream(server, template, mailer):
    """The stream's records handed to the mailer function in batches; what
    each invocation answered, and every message SES accepted."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    records, batch = stream_records(server, template)
    answers = [mailer.invoke({"Records": records[i:i + batch]})
               for i in range(0, len(records), batch)]
    # The server runs in this process: its SES is moto's, here.
    sent = [{"from": m.source, "to": m.destinations["ToAddresses"], "subject": m.subject,
             "text": m.body}
            for m in ses_backends[DEFAULT_ACCOUNT_ID][apigateway.REGION].sent_messages]
    return {"records": records, "invocations": answers, "sent": sent}


def operator(endpoint, *command):
    """An operator's command, against the same fake AWS; its output."""
    env = {"PATH": os.environ["PATH"], "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": apigateway.REGION, "AWS_ENDPOINT_URL": endpoint}
    run = subprocess.run([sys.executable, "manage.py", "--stage", "dev", "--endpoint", endpoint,
                          *command], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def grant_admin(endpoint, username):
    operator(endpoint, "grant-admin", username)


def create_client(endpoint, name):
    """An introspection client's (id, secret)."""
    made = json.loads(operator(endpoint, "create-client", name))
    return made["client_id"], made["client_secret"]


def walk(gateway, grant_admin, create_client):
    """Every route: the README walkthrough, introspection by a resource
    server, the account lifecycle, the admin routes, and then any route of
    the template not driven yet (with a live admin token and an empty body).
    Answers by name."""
    a = {}
    a["index"] = gateway.call("GET", "/")
    a["page"] = gateway.call("GET", "/", headers={"Accept": "text/html"})
    a["openapi"] = gateway.call("GET", "/api/v1/openapi.json")
    alice = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    a["signup"] = gateway.call("POST", "/api/v1/signup", alice)
    a["signup_invalid"] = gateway.call("POST", "/api/v1/signup",
                                       {"username": "x", "email": "no", "password": "password123"})
    a["login"] = gateway.call("POST", "/api/v1/login",
                              {"username": "alice", "password": PASSWORD, "description": "laptop"})
    a["login_wrong"] = gateway.call("POST", "/api/v1/login",
                                    {"username": "alice", "password": "not the password"})
    token = a["login"].json["token"]
    phone = gateway.call("POST", "/api/v1/login",
                         {"username": "alice", "password": PASSWORD}).json
    a["no_token"] = gateway.call("GET", "/api/v1/users/me")
    a["bad_token"] = gateway.call("GET", "/api/v1/users/me", token="not.a.token")
    a["unknown_route"] = gateway.call("GET", "/api/v1/nothing-here", token=token)
    a["me"] = gateway.call("GET", "/api/v1/users/me", token=token)
    a["tokens"] = gateway.call("GET", "/api/v1/tokens", token=token, query={"limit": "1"})
    a["revoke_one"] = gateway.call("DELETE", f"/api/v1/tokens/{phone['token_id']}", token=token)
    a["revoked_token"] = gateway.call("GET", "/api/v1/users/me", token=phone["token"])

    client_id, secret = create_client("orders-api")
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    for name, sent in (("introspect", token), ("introspect_revoked", phone["token"])):
        a[name] = gateway.request("POST", "/api/v1/introspect", f"token={sent}", {
            "Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"})
    a["introspect_no_client"] = gateway.call("POST", "/api/v1/introspect", {"token": token})

    root = {"username": "root", "email": "root@example.com", "password": PASSWORD}
    assert gateway.call("POST", "/api/v1/signup", root).status == 201
    grant_admin("root")
    admin = gateway.call("POST", "/api/v1/login",
                         {"username": "root", "password": PASSWORD}).json["token"]
    a["admin_tokens"] = gateway.call("GET", "/api/v1/admin/users/ALICE/tokens", token=admin)
    a["admin_revoke"] = gateway.call("DELETE", "/api/v1/admin/users/alice/tokens", token=admin)
    a["admin_events"] = gateway.call("GET", "/api/v1/admin/users/alice/events", token=admin)
    a["after_admin_revoke"] = gateway.call("GET", "/api/v1/users/me", token=token)

    token = gateway.call("POST", "/api/v1/login",
                         {"username": "alice", "password": PASSWORD}).json["token"]
    a["password"] = gateway.call("POST", "/api/v1/users/me/password", {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD}, token=token)
    gateway.call("POST", "/api/v1/login", {"username": "alice", "password": NEW_PASSWORD})
    a["revoke_others"] = gateway.call("DELETE", "/api/v1/tokens", token=token,
                                      query={"keep_current": "true"})
    a["logout"] = gateway.call("POST", "/api/v1/logout", token=token)
    token = gateway.call("POST", "/api/v1/login",
                         {"username": "alice", "password": NEW_PASSWORD}).json["token"]
    a["events"] = gateway.call("GET", "/api/v1/users/me/events", token=token)
    a["delete_me"] = gateway.call("DELETE", "/api/v1/users/me", {"password": NEW_PASSWORD},
                                  token=token)

    a.update(factors_walk.walk(gateway))

    driven = {(method, route) for method, route, _ in gateway.called}
    fill = {"username": "root", "token_id": "0" * 24}
    for route, methods in definition(gateway_template(gateway))["paths"].items():
        for method in methods:
            if method == "options" or (method.upper(), route) in driven:
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: fill.get(m.group(1), "x"), route)
            a[f"{method.upper()} {route}"] = gateway.call(method.upper(), path, {}, token=admin)
    return a


def gateway_template(gateway):
    return {"Resources": {"RestAPI": {"Properties": {"DefinitionBody": gateway.definition}}}}


def test_every_route_of_the_template_runs_in_the_built_zip_without_a_5xx(deployed, template):
    gateway, _, _, logs = deployed
    routes = {(method.upper(), path) for path, methods in definition(template)["paths"].items()
              for method in methods if method != "options"}
    assert routes <= {(method, route) for method, route, _ in gateway.called}
    failed = [call for call in gateway.called if call[2] >= 500]
    assert failed == [], logs


def test_the_walk_through_every_route_gets_the_contracts_statuses(deployed):
    _, a, _, logs = deployed
    statuses = {name: answer.status for name, answer in a.items()
                if " " not in name and name not in FACTOR_STATUSES}
    assert statuses == {
        "index": 200, "page": 200, "openapi": 200, "signup": 201, "signup_invalid": 422,
        "login": 200, "login_wrong": 401, "no_token": 401, "bad_token": 403,
        "unknown_route": 404, "me": 200, "tokens": 200, "revoke_one": 200,
        "revoked_token": 403, "introspect": 200, "introspect_revoked": 200,
        "introspect_no_client": 401, "admin_tokens": 200, "admin_revoke": 200,
        "after_admin_revoke": 403, "password": 200, "revoke_others": 200, "logout": 200,
        "delete_me": 200, "admin_events": 200, "events": 200}, logs
    assert a["page"].headers["Content-Type"].startswith("text/html")
    assert a["admin_revoke"].json == {"revoked": 1}
    assert a["revoke_others"].json == {"revoked": 1}
    assert a["delete_me"].json == {"deleted": True, "revoked": 1}
    assert [(e["type"], e["by"]) for e in a["admin_events"].json["events"][:2]] == [
        ("tokens_revoked", "admin"), ("token_revoked", "self")]
    assert [e["type"] for e in a["events"].json["events"][:4]] == [
        "login", "logout", "tokens_revoked", "login"]
    assert (a["introspect"].json["active"], a["introspect"].json["username"]) == (True, "alice")
    assert a["introspect_revoked"].json == {"active": False}
    assert a["introspect_no_client"].headers["WWW-Authenticate"].startswith("Basic ")


def test_the_gateways_own_answers_are_the_templates_gateway_responses(deployed):
    _, a, _, _ = deployed
    assert (a["no_token"].via, a["bad_token"].via, a["unknown_route"].via,
            a["revoked_token"].via) == ("UNAUTHORIZED", "ACCESS_DENIED",
                                       "MISSING_AUTHENTICATION_TOKEN", "ACCESS_DENIED")
    assert a["no_token"].headers["WWW-Authenticate"] == "Bearer"


def test_the_authorizers_context_reaches_the_api_handler_as_strings(deployed):
    _, a, _, _ = deployed
    context = a["me"].authorizer
    assert context and all(isinstance(v, str) for v in context.values())
    assert a["me"].json["id"] == context["user_id"] == context["principalId"]
    assert a["me"].json["username"] == "alice"


def test_tokens_are_signed_with_the_stages_ssm_parameter(deployed, template):
    import jwt

    _, a, _, _ = deployed
    for function in resources(template, "AWS::Serverless::Function").values():
        assert "JWT_SECRET" not in function["Properties"]["Environment"]["Variables"]
    claims = jwt.decode(a["login"].json["token"], SIGNING_SECRET, algorithms=["HS256"])
    assert claims["jti"] == a["login"].json["token_id"]


def test_the_api_handlers_request_lines_name_the_user_the_authorizer_allowed(deployed):
    _, a, _, logs = deployed
    lines = [json.loads(line) for line in logs["APIHandler"].splitlines() if line.startswith("{")]
    me = [line for line in lines if line.get("route") == "/api/v1/users/me"
          and line.get("status") == 200]
    assert me and me[0]["user_id"] == a["me"].json["id"]
    assert any(line.get("event") == "login" for line in lines)


@pytest.mark.parametrize("policy,allowed", [
    ({"Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke",
                     "Resource": "arn:aws:execute-api:*:*:*/dev/*/*"}]}, True),
    # An explicit Deny wins over any Allow.
    ({"Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
                    {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "*"}]}, False),
    # An Allow for another stage covers nothing here: a deny.
    ({"Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke",
                     "Resource": "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/api/*"}]},
     False),
    ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}, False),
])
def test_the_gateway_reads_a_policy_as_api_gateway_does(policy, allowed):
    arn = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev/GET/api/v1/users/me"
    assert apigateway.policy_allows(policy, arn) is allowed


def test_the_gateway_refuses_a_context_api_gateway_would_refuse():
    assert apigateway.context_as_strings({"n": 1, "ok": True, "s": "x"}) == \
        {"n": "1", "ok": "true", "s": "x"}
    assert apigateway.context_as_strings({"roles": ["admin"]}) is None


def shipped(names):
    """The zip's files, without its bytecode and the libraries' metadata."""
    return {n for n in names if not n.endswith("/") and "__pycache__" not in n
            and ".dist-info/" not in n}


def test_the_zip_holds_exactly_the_project_files_the_functions_use(deployed):
    """Every file of app.py and chalicelib/ in the zip is imported or read
    when the functions run, and everything they use comes from the zip:
    nothing that only builds, deploys or serves locally ships to Lambda."""
    _, _, used, _ = deployed
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        ours = {n for n in shipped(z.namelist()) if n == "app.py" or n.startswith("chalicelib/")}
    assert {n for n in shipped(used) if n == "app.py" or n.startswith("chalicelib/")} == ours


def test_every_module_and_package_at_the_top_of_the_zip_is_loaded_by_the_functions(deployed):
    """The libraries included: none ships for a build step or a test."""
    _, _, used, _ = deployed
    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        top = {n.split("/")[0] for n in shipped(z.namelist())}
    assert top <= {n.split("/")[0] for n in used}


# --- the mailer, from the zip, on the mail table's stream ------------------

def test_the_mailer_sends_from_the_stream_through_ses(deployed):
    """Signups and the walk's requests wrote to the outbox; the stream's new
    items, handed to the mailer from the zip, leave as mail through SES:
    root's verification link (alice's mail is dropped, her account gone)."""
    _, a, _, logs = deployed
    mailed = a["mailer stream"]
    assert mailed["records"] and {r["eventName"] for r in mailed["records"]} == {"INSERT"}
    assert mailed["invocations"] and all(kind == "result" for kind, _ in
                                         mailed["invocations"]), logs["Mailer"]
    (message,) = [m for m in mailed["sent"] if m["to"] == ["root@example.com"]]
    assert message["from"] == SENDER
    assert re.search(re.escape(PUBLIC_URL) + r"#verify=\S+", message["text"])


def test_the_mailer_starts_without_reading_the_signing_secret(deployed):
    """Its role may not read the secret: its interpreter ran with a parameter
    that does not exist, and still handled every batch."""
    _, a, _, _ = deployed
    assert a["mailer stream"]["invocations"]
    assert all(kind == "result" for kind, _ in a["mailer stream"]["invocations"])


def test_the_mailers_log_holds_no_link_address_or_text(deployed):
    _, a, _, logs = deployed
    log = logs["Mailer"]
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines].count("email_sent") == len(a["mailer stream"]["sent"])
    for message in a["mailer stream"]["sent"]:
        link = re.search(r"#verify=(\S+)", message["text"]).group(1)
        for secret in (link, link.split(".")[-1], *message["to"], message["subject"]):
            assert secret not in log
        assert not any(len(part) > 20 and part in log for part in message["text"].splitlines())


FACTOR_STATUSES = {"totp_setup": 200, "totp_confirm": 200, "mfa_required": 403,
                   "login_totp": 200, "passkey_add": 201, "login_passkey": 200,
                   "mfa_status": 200}


def test_totp_and_a_passkey_log_in_through_the_built_zip(deployed):
    """pyotp, segno, fido2 and cryptography load and work in the
    Lambda-like run (tests/deploy/factors_walk.py)."""
    _, a, _, logs = deployed
    assert {name: a[name].status for name in FACTOR_STATUSES} == FACTOR_STATUSES, logs
    assert a["login_totp"].json["token"] and a["login_passkey"].json["token"]
    assert a["mfa_status"].json["totp"] is True and len(a["mfa_status"].json["passkeys"]) == 1


def test_the_zip_holds_every_package_the_requirements_need_but_what_builds(template):
    """cryptography's compiled module among them; only cffi's Python
    package and pycparser, which nothing loads at run time, stay out
    (deploy/package.py)."""
    from deploy import wheels

    with zipfile.ZipFile(os.path.join(BUILD, "deployment.zip")) as z:
        have = wheels.shipped(z.namelist())
    needed = set(wheels.closure(wheels.requirements(os.path.join(ROOT, "requirements.txt"))))
    assert {"fido2", "cryptography"} <= have and needed - have == {"cffi", "pycparser"}


def test_the_authorizers_cold_start_from_the_zip_loads_no_second_factor_package(template,
                                                                                 tmp_path):
    """In the Lambda-like folders (the zip, then the runtime's boto3 alone),
    importing app and making the DynamoDB client, as the authorizer's cold
    start does, loads none of what the zip holds for the second factors."""
    import bench
    from test_cold_start import loaded

    task, _, runtime = bench.lambda_like_dirs(str(tmp_path))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{task}:{runtime}",
           "PYTHONDONTWRITEBYTECODE": "1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "JWT_SECRET": SIGNING_SECRET,
           "USERS_TABLE": "u", "TOKENS_TABLE": "t", "EVENTS_TABLE": "e", "MAIL_TABLE": "m"}
    program = ("import json, sys, app; from chalicelib import aws; aws.dynamodb(); "
               "print(json.dumps(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-S", "-c", program], cwd=task, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    modules = json.loads(run.stdout)
    assert "fido2" in os.listdir(task) and "boto3" in modules
    assert loaded(modules) == []
