"""`make deploy STAGE=... BUCKET=...` (deploy/stack.py) against moto's AWS.

moto emulates SSM, S3 and CloudFormation's API, so the secret, the uploads,
the change sets and the outputs run for real. Its CloudFormation cannot
create the SAM resources (the functions, the API and its stage, the
permissions that reference them): those stacks are built from what it can
create of the real template (the tables, and the REST API the URL names).
The real template's remaining checks are cfn-lint's (tests/deploy/test_deploy.py).
The tests reach the service's SSM, S3 and CloudFormation calls through a
boto3 session of their own, so botocore's event hooks can answer what moto
would not (an update without changes, a rolled-back stack).
"""
import json
import os
import shutil
import subprocess

import boto3
import pytest
from moto import mock_aws

from chalicelib import aws, signing_keys
from conftest import ROOT
from conftest import PUBLIC_URL, SENDER
from deploy import mail, secret, stack, stages
from faults import answer
from test_deploy import BUILD, template  # noqa: F401 - the fixture

# moto's CloudFormation warns of each resource type it skips.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS")
BUCKET = "login-service-deployments"
SECRET_NAME = "/login-service/dev/jwt-secret"


def emulated(template):  # noqa: F811
    """The part of the real template moto's CloudFormation can create, its
    functions included (it skips them) so that their code is rewritten."""
    kept = {name: resource for name, resource in template["Resources"].items()
            if resource["Type"] in ("AWS::DynamoDB::Table", "AWS::Serverless::Function")}
    kept["RestAPI"] = {"Type": "AWS::ApiGateway::RestApi",
                       "Properties": {"Name": template["Resources"]["RestAPI"]["Properties"]["Name"]}}
    return {"AWSTemplateFormatVersion": template["AWSTemplateFormatVersion"],
            "Parameters": template["Parameters"], "Resources": kept,
            "Outputs": {"EndpointURL": template["Outputs"]["EndpointURL"]}}


@pytest.fixture
def build(template, tmp_path, monkeypatch):  # noqa: F811
    """build/dev/ as `make package` wrote it, with the emulated template."""
    folder = tmp_path / "dev"
    folder.mkdir()
    shutil.copy(os.path.join(BUILD, "deployment.zip"), folder)
    (folder / "sam.json").write_text(json.dumps(emulated(template)))
    monkeypatch.setattr(stages, "build_dir", lambda stage: str(tmp_path / stage))
    return folder


@pytest.fixture
def account():
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=BUCKET)
        yield session


def deploy(session, *parameters):
    return stack.main(["--stage", "dev", "--bucket", BUCKET, *parameters], session=session,
                      poll_seconds=0)


def every_parameter(build, **given):
    """Name=value for each parameter of the template, its default unless
    given: moto keeps only the values a stack was given, and fails a later
    UsePreviousValue of a default (AWS keeps the defaults too). The mail
    parameters come from the environment (conftest sets it)."""
    specs = json.loads((build / "sam.json").read_text())["Parameters"]
    return [f"{name}={given.get(name, spec.get('Default', ''))}" for name, spec in specs.items()
            if name not in mail.PARAMETERS]


def stack_of(session):
    return session.client("cloudformation").describe_stacks(
        StackName="login-service-dev")["Stacks"][0]


def secret_value(session):
    return session.client("ssm").get_parameter(Name=SECRET_NAME, WithDecryption=True)["Parameter"]


def service_secrets(monkeypatch):
    """The secrets the service itself reads from the stage's parameter."""
    monkeypatch.setenv("JWT_SECRET_PARAMETER", SECRET_NAME)
    aws.reset()
    signing_keys.forget()
    try:
        return signing_keys.secrets()
    finally:
        signing_keys.forget()
        aws.reset()


def test_a_first_deploy_creates_the_secret_uploads_the_code_and_creates_the_stack(
        account, build, capfd):
    assert deploy(account) == 0
    created = secret_value(account)
    assert created["Type"] == "SecureString" and created["Version"] == 1
    assert len(created["Value"]) >= 64

    s3 = account.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    (code,) = [k for k in keys if k.endswith(".zip")]
    (uploaded,) = [k for k in keys if k.endswith(".template.json")]
    assert code.startswith("login-service/dev/")
    assert s3.get_object(Bucket=BUCKET, Key=code)["Body"].read() == \
        (build / "deployment.zip").read_bytes()
    functions = [r for r in json.loads(s3.get_object(Bucket=BUCKET, Key=uploaded)["Body"].read())[
        "Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert len(functions) == 3
    assert {f["Properties"]["CodeUri"] for f in functions} == {f"s3://{BUCKET}/{code}"}

    assert stack_of(account)["StackStatus"] == "CREATE_COMPLETE"
    assert set(account.client("dynamodb").list_tables()["TableNames"]) == {
        "login-service-dev-users", "login-service-dev-tokens", "login-service-dev-events",
        "login-service-dev-mail"}
    (api,) = account.client("apigateway").get_rest_apis()["items"]
    url = f"https://{api['id']}.execute-api.us-east-1.amazonaws.com/dev/"
    assert (build / "url").read_text() == url + "\n"
    out, err = capfd.readouterr()
    assert out.splitlines()[-1] == f"login-service-dev: {url}"
    assert created["Value"] not in out + err


def test_the_secret_is_created_once_never_printed_and_the_service_accepts_it(
        account, build, capfd, caplog, monkeypatch):
    deploy(account)
    first = secret_value(account)
    deploy(account)
    assert secret_value(account) == first
    out, err = capfd.readouterr()
    assert "created the signing secret" in out and "exists: kept" in out
    shown = out + err + caplog.text + "".join(p.read_text(errors="replace")
                                              for p in build.iterdir())
    assert first["Value"] not in shown

    assert service_secrets(monkeypatch) == (first["Value"],)


def test_the_mail_parameters_are_the_environments(account, build):
    deploy(account)
    given = {p["ParameterKey"]: p["ParameterValue"] for p in stack_of(account)["Parameters"]}
    assert (given["EmailFrom"], given["PublicUrl"]) == (SENDER, PUBLIC_URL)


@pytest.mark.parametrize("variable", ["EMAIL_FROM", "PUBLIC_URL"])
def test_a_deploy_without_a_mail_setting_is_refused_in_one_line_before_anything_changes(
        account, build, monkeypatch, variable):
    monkeypatch.delenv(variable)
    for check in ([], ["--check"]):
        with pytest.raises(SystemExit) as refused:
            stack.main(["--stage", "dev", "--bucket", BUCKET, *check], session=account)
        message = str(refused.value)
        assert "\n" not in message and f"make deploy needs {variable} in the environment" in message
    assert "Contents" not in account.client("s3").list_objects_v2(Bucket=BUCKET)
    assert account.client("ssm").describe_parameters()["Parameters"] == []


@pytest.mark.parametrize("variable,value", [("EMAIL_FROM", "Login <no-reply@login.example>"),
                                            ("PUBLIC_URL", "http://login.example/")])
def test_a_mail_setting_the_functions_would_refuse_is_refused_before_packaging(
        account, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit, match=f"^{variable} must be"):
        stack.main(["--stage", "dev", "--bucket", BUCKET, "--check"], session=account)


def test_a_mail_parameter_given_in_parameters_is_refused(account, build):
    with pytest.raises(SystemExit, match="EmailFrom is set from EMAIL_FROM in the environment"):
        deploy(account, "EmailFrom=other@login.example")
    assert "Contents" not in account.client("s3").list_objects_v2(Bucket=BUCKET)


def test_a_parameter_of_another_type_is_refused_not_replaced(account):
    ssm = account.client("ssm")
    ssm.put_parameter(Name=SECRET_NAME, Type="String", Value="x" * 40)
    with pytest.raises(SystemExit, match="not a SecureString"):
        secret.ensure(ssm, SECRET_NAME)
    assert ssm.get_parameter(Name=SECRET_NAME)["Parameter"]["Value"] == "x" * 40


def test_a_second_deploy_updates_the_same_stack_and_keeps_its_parameters(account, build):
    topic = "arn:aws:sns:us-east-1:123456789012:alarms"
    deploy(account, *every_parameter(build, AlarmTopicArn=topic))
    changed = json.loads((build / "sam.json").read_text())
    changed["Resources"]["UsersTable"]["Properties"]["Tags"] = [{"Key": "k", "Value": "v"}]
    (build / "sam.json").write_text(json.dumps(changed))
    deploy(account)
    found = stack_of(account)
    assert found["StackStatus"] == "UPDATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in found["Parameters"]}[
        "AlarmTopicArn"] == topic
    stacks = account.client("cloudformation").list_stacks()["StackSummaries"]
    assert [s["StackName"] for s in stacks] == ["login-service-dev"]


def test_a_deploy_that_changes_nothing_is_no_failure(account, build, capfd):
    deploy(account)
    # What CloudFormation answers an update without changes (moto applies it).
    account.events.register("before-call.cloudformation.UpdateStack", lambda **kwargs: answer(
        400, {"Error": {"Code": "ValidationError", "Message": "No updates are to be performed."},
              "ResponseMetadata": {"HTTPStatusCode": 400}}))
    assert deploy(account) == 0
    out = capfd.readouterr().out
    assert "login-service-dev is already up to date" in out
    assert out.splitlines()[-1].startswith("login-service-dev: https://")


@pytest.mark.parametrize("argv, message", [
    (["--stage", "local"], "not a deployed stage"),
    (["--stage", "dev", "NoSuchParameter=1"], "unknown template parameter"),
])
def test_a_deploy_that_cannot_work_is_refused_before_anything_changes(account, build, argv,
                                                                       message):
    with pytest.raises(SystemExit, match=message):
        stack.main([*argv, "--bucket", BUCKET], session=account, poll_seconds=0)
    assert "Contents" not in account.client("s3").list_objects_v2(Bucket=BUCKET)
    assert account.client("ssm").describe_parameters()["Parameters"] == []


def test_the_check_before_packaging_refuses_a_stage_that_is_not_deployed(account):
    """`make deploy STAGE=local` stops there, not in chalice package's missing policy file."""
    with pytest.raises(SystemExit, match="'local' has no JWT_SECRET_PARAMETER"):
        stack.main(["--stage", "local", "--bucket", BUCKET, "--check"], session=account)
    with pytest.raises(SystemExit, match="no stage 'staging'"):
        stack.main(["--stage", "staging", "--bucket", BUCKET, "--check"], session=account)
    assert stack.main(["--stage", "prod", "--bucket", BUCKET, "--check"], session=account) == 0
    assert account.client("ssm").describe_parameters()["Parameters"] == []


def test_a_bucket_in_another_region_is_refused_before_anything_changes(account, build):
    account.client("s3").create_bucket(
        Bucket="elsewhere-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(SystemExit, match="elsewhere-bucket is in eu-west-1"):
        stack.main(["--stage", "dev", "--bucket", "elsewhere-bucket"], session=account)
    assert account.client("ssm").describe_parameters()["Parameters"] == []


def test_a_missing_bucket_is_named_with_the_call_that_found_it(account, build):
    with pytest.raises(SystemExit, match="GetBucketLocation: NoSuchBucket"):
        stack.main(["--stage", "dev", "--bucket", "no-such-bucket"], session=account)
    assert account.client("ssm").describe_parameters()["Parameters"] == []


def test_no_region_and_no_credentials_each_say_what_to_set(build, monkeypatch):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(SystemExit, match="no AWS region: set AWS_REGION"):
        stack.main(["--stage", "dev", "--bucket", BUCKET], session=boto3.session.Session())
    with pytest.raises(SystemExit, match="no AWS credentials: set AWS_PROFILE"):
        stack.main(["--stage", "dev", "--bucket", BUCKET],
                   session=boto3.session.Session(region_name="us-east-1"))


def test_a_failed_stack_names_what_failed(account, build):
    broken = json.loads((build / "sam.json").read_text())
    deploy(account, *every_parameter(build))
    account.events.register(
        "after-call.cloudformation.DescribeStacks",
        lambda parsed, **kwargs: parsed["Stacks"][0].update(StackStatus="UPDATE_ROLLBACK_COMPLETE"))
    account.events.register(
        "after-call.cloudformation.DescribeStackEvents",
        lambda parsed, **kwargs: parsed.update(StackEvents=[
            {"LogicalResourceId": "RestAPIStage", "ResourceType": "AWS::ApiGateway::Stage",
             "ResourceStatus": "CREATE_FAILED",
             "ResourceStatusReason": "CloudWatch Logs role ARN must be set in account settings"},
            {"LogicalResourceId": "login-service-dev", "ResourceType": "AWS::CloudFormation::Stack",
             "ResourceStatus": "UPDATE_IN_PROGRESS", "ResourceStatusReason": "User Initiated"},
            {"LogicalResourceId": "OldFailure", "ResourceType": "AWS::Logs::LogGroup",
             "ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": "an earlier deployment"},
        ]))
    broken["Resources"]["UsersTable"]["Properties"]["Tags"] = [{"Key": "k", "Value": "v"}]
    (build / "sam.json").write_text(json.dumps(broken))
    with pytest.raises(SystemExit) as refused:
        deploy(account)
    message = str(refused.value)
    assert "UPDATE_ROLLBACK_COMPLETE" in message
    assert "RestAPIStage (AWS::ApiGateway::Stage): CloudWatch Logs role ARN" in message
    assert "OldFailure" not in message


def test_make_deploy_without_a_bucket_says_so_before_building():
    run = subprocess.run(["make", "--no-print-directory", "deploy", "STAGE=prod"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "make deploy needs BUCKET=" in run.stderr
    assert "chalice" not in run.stdout + run.stderr


def test_make_deploy_packages_the_stage_then_deploys_it_then_smokes_its_url():
    run = subprocess.run(["make", "--no-print-directory", "-n", "deploy", "STAGE=prod",
                          "BUCKET=b", "PARAMETERS=ReserveConcurrency=true"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    steps = [next(i for i, line in enumerate(lines) if part in line) for part in (
        '-m deploy.stack --stage prod --bucket "b" --check',
        "--stage prod --merge-template build/prod/merge.json build/prod/package",
        "-m deploy.package build/prod/deployment.zip",
        '-m deploy.stack --stage prod --bucket "b" ReserveConcurrency=true',
        "-m deploy.smoke")]
    assert steps == sorted(steps)


def test_rolling_the_secret_makes_a_new_version_and_the_service_accepts_both(
        account, build, capfd, monkeypatch):
    deploy(account)
    first = secret_value(account)["Value"]
    assert secret.main(["--stage", "dev", "--roll"], session=account) == 0
    rolled = secret_value(account)
    assert rolled["Version"] == 2 and rolled["Value"] != first
    out, err = capfd.readouterr()
    assert f"rolled {SECRET_NAME} to version 2" in out
    assert first not in out + err and rolled["Value"] not in out + err

    assert service_secrets(monkeypatch) == (rolled["Value"], first)


def test_rolling_a_missing_secret_creates_it_and_says_so(account):
    with pytest.raises(SystemExit, match="did not exist: created it"):
        secret.main(["--stage", "prod", "--roll"], session=account)
    parameter = account.client("ssm").get_parameter(Name="/login-service/prod/jwt-secret")
    assert parameter["Parameter"]["Version"] == 1
