"""`make deploy STAGE=dev BUCKET=...`: a packaged stage on AWS.

    python -m deploy.stack --stage dev --bucket my-bucket [Name=value ...]

After `make package STAGE=dev` has written build/dev/, in this order:

1. refuse early what would fail late: a stage with no signing secret, no
   ``EMAIL_FROM`` or ``PUBLIC_URL`` in the environment (or one the functions
   would refuse), no region, a bucket in another region (``--check`` does
   only these, which `make deploy` runs before it builds the package), an
   unknown template parameter;
2. the stage's signing secret, created in SSM if missing (deploy/secret.py);
3. the zip and the template uploaded to the bucket, named by their content
   (the template is too large to send inline: CloudFormation takes 51,200
   bytes that way, and it is about 90,000);
4. the stack ``login-service-<stage>`` created or updated, and waited for,
   with the mail parameters from the environment (deploy/mail.py); other
   parameters not given keep the values of the last deployment;
5. the stage's URL (the stack's ``EndpointURL`` output) printed and written
   to build/<stage>/url, where `make deploy` finds it for `make smoke`.
"""
import argparse
import copy
import hashlib
import json
import os
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from chalicelib import config
from chalicelib.config import SERVICE_NAME
from deploy import mail, secret, stages

# IAM: the template creates the functions' roles. AUTO_EXPAND: the SAM
# transform expands it.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
# What CloudFormation answers an update that changes nothing: the stack is
# already as asked, which is no failure.
NO_CHANGES = "No updates are to be performed"
# A stack whose creation failed, which takes no update.
FAILED_CREATION = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"}
# S3's legacy name of eu-west-1 in GetBucketLocation.
LEGACY_LOCATIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}
WAIT_SECONDS = 3600


def stack_name(stage):
    return f"{SERVICE_NAME}-{stage}"


def main(argv=None, session=None, poll_seconds=5):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", required=True, help="stage of .chalice/config.json")
    parser.add_argument("--bucket", required=True,
                        help="an S3 bucket in the stage's region, for the code and the template")
    parser.add_argument("--check", action="store_true",
                        help="only what needs no package: the stage, region, credentials, bucket")
    parser.add_argument("parameters", nargs="*", metavar="Name=value",
                        help="template parameters (docs/deploy.md)")
    args = parser.parse_args(argv)
    session = session or boto3.session.Session()
    try:
        if args.check:
            check(session, args.stage, args.bucket)
            return 0
        url = deploy(session, args.stage, args.bucket, args.parameters,
                     poll_seconds=poll_seconds)
    except NoCredentialsError:
        raise SystemExit("no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY), or run aws configure") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise SystemExit(f"{exc.operation_name}: {error.get('Code')}: "
                         f"{error.get('Message')}") from None
    except BotoCoreError as exc:
        raise SystemExit(str(exc)) from None
    print(f"{stack_name(args.stage)}: {url}")
    return 0


def deploy(session, stage, bucket, parameters=(), poll_seconds=5):
    """Steps 1 to 5 of the module's docstring; returns the stage's URL."""
    secret_name, s3 = check(session, stage, bucket)
    build = stages.build_dir(stage)
    template = read_template(build, stage)
    overrides = {**parse_parameters(parameters, template), **mail_parameters()}

    if secret.ensure(session.client("ssm"), secret_name):
        say(f"created the signing secret {secret_name} (SecureString)")
    else:
        say(f"the signing secret {secret_name} exists: kept")

    with open(os.path.join(build, "deployment.zip"), "rb") as f:
        code = f.read()
    code_key = upload(s3, bucket, f"{SERVICE_NAME}/{stage}", code, ".zip")
    body = json.dumps(with_code_at(template, f"s3://{bucket}/{code_key}"), indent=1).encode()
    template_key = upload(s3, bucket, f"{SERVICE_NAME}/{stage}", body, ".template.json")
    say(f"uploaded s3://{bucket}/{code_key} and s3://{bucket}/{template_key}")

    cloudformation = session.client("cloudformation")
    name = stack_name(stage)
    # Path-style, as the AWS CLI's own package command writes it.
    apply_stack(cloudformation, name, f"{s3.meta.endpoint_url}/{bucket}/{template_key}",
                template, overrides, poll_seconds)
    url = endpoint_url(cloudformation, name)
    with open(os.path.join(build, "url"), "w", encoding="utf-8") as f:
        f.write(url + "\n")
    return url


def check(session, stage, bucket):
    """What `make deploy` checks before it builds anything: the stage is a
    deployed one, and there are a region, credentials and a bucket in that
    region. Returns the secret's name and the S3 client."""
    secret_name = secret.parameter_name(stage)
    mail_parameters()
    region = session.region_name
    if not region:
        raise SystemExit("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), "
                         "or a region in your AWS profile")
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    return secret_name, s3


def mail_parameters(env=None):
    """{"EmailFrom": ..., "PublicUrl": ...}, from the environment variables
    the functions read; a missing one, or one they would refuse, stops the
    deployment with one line."""
    env = os.environ if env is None else env
    missing = [s.variable for s in mail.PARAMETERS.values() if not env.get(s.variable)]
    if missing:
        raise SystemExit(
            f"make deploy needs {' and '.join(missing)} in the environment: the address mail "
            "is sent from (verified in SES) and the sessions page's https:// address, e.g. "
            "EMAIL_FROM=no-reply@example.com PUBLIC_URL=https://login.example.com/ "
            "(docs/deploy.md, Mail)")
    try:
        config.check({s.variable: env[s.variable] for s in mail.PARAMETERS.values()},
                     secret_required=False)
    except config.ConfigurationError as exc:
        raise SystemExit(str(exc)) from None
    return {name: env[s.variable] for name, s in mail.PARAMETERS.items()}


def say(line):
    print(line, flush=True)


def read_template(build, stage):
    try:
        with open(os.path.join(build, "sam.json"), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"no package in {build}: run make package STAGE={stage}") from None


def parse_parameters(pairs, template):
    """{"Name": "value"} from ["Name=value", ...]; names the template lacks are refused."""
    known = template.get("Parameters", {})
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if key in mail.PARAMETERS:
            raise SystemExit(f"{key} is set from {mail.PARAMETERS[key].variable} in the "
                             "environment, not in PARAMETERS")
        if not sep or key not in known:
            raise SystemExit(f"unknown template parameter {pair!r}: give Name=value, "
                             f"Name one of {', '.join(sorted(known))}")
        found[key] = value
    return found


def check_bucket(s3, bucket, region):
    """CloudFormation reads the template only from a bucket in its own region."""
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    location = LEGACY_LOCATIONS.get(location, location)
    if location != region:
        raise SystemExit(f"bucket {bucket} is in {location}, the stack would be in {region}: "
                         "give a bucket in the stack's region (or set AWS_REGION)")


def upload(s3, bucket, prefix, body, suffix):
    """Put ``body`` under a key named by its SHA-256, so that an unchanged
    zip keeps its CodeUri and CloudFormation leaves the functions alone."""
    key = f"{prefix}/{hashlib.sha256(body).hexdigest()}{suffix}"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def with_code_at(template, uri):
    """The template with every function's code at ``uri`` (chalice writes a
    path relative to the template, which only the CLI's package resolves)."""
    found = copy.deepcopy(template)
    for resource in found["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = uri
    return found


def stack_status(cloudformation, name):
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in exc.response["Error"].get("Message", ""):
            return None
        raise
    return stacks[0]["StackStatus"], [p["ParameterKey"] for p in stacks[0].get("Parameters", [])]


def apply_stack(cloudformation, name, template_url, template, overrides, poll_seconds):
    found = stack_status(cloudformation, name)
    status, previous = found or (None, [])
    if status in FAILED_CREATION or status == "REVIEW_IN_PROGRESS":
        raise SystemExit(f"stack {name} is {status}: it was never created. Delete it "
                         f"(aws cloudformation delete-stack --stack-name {name}) and deploy "
                         "again; docs/deploy.md, Tearing down, says what it keeps")
    if status and status.endswith("_IN_PROGRESS"):
        raise SystemExit(f"stack {name} is {status}: wait until it is done, then deploy again")
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(overrides.items())]
    request = {"StackName": name, "TemplateURL": template_url, "Capabilities": CAPABILITIES}
    if status is None:
        say(f"creating {name}")
        cloudformation.create_stack(Parameters=parameters, **request)
    else:
        parameters += [{"ParameterKey": k, "UsePreviousValue": True} for k in previous
                       if k not in overrides and k in template.get("Parameters", {})]
        say(f"updating {name}")
        try:
            cloudformation.update_stack(Parameters=parameters, **request)
        except ClientError as exc:
            if NO_CHANGES in exc.response["Error"].get("Message", ""):
                say(f"{name} is already up to date")
                return
            raise
    stack = wait(lambda: cloudformation.describe_stacks(StackName=name)["Stacks"][0],
                 lambda s: s["StackStatus"], poll_seconds)
    if stack["StackStatus"] not in DONE:
        raise SystemExit(f"stack {name} is {stack['StackStatus']}:\n"
                         + "\n".join(failures(cloudformation, name)))
    say(f"{name}: {stack['StackStatus']}")


def wait(describe, status_of, poll_seconds):
    """``describe()`` again until ``status_of`` its answer is no longer in progress."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        answer = describe()
        status = status_of(answer)
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return answer
        time.sleep(poll_seconds)


def failures(cloudformation, name):
    """What failed and why in the stack's latest operation: its events,
    newest first, back to the one that started it."""
    found = []
    for event in cloudformation.describe_stack_events(StackName=name)["StackEvents"]:
        if event["LogicalResourceId"] == name and event.get("ResourceStatusReason") == \
                "User Initiated":
            break
        if event["ResourceStatus"].endswith("_FAILED"):
            found.append(f"  {event['LogicalResourceId']} ({event['ResourceType']}): "
                         f"{event.get('ResourceStatusReason', '')}")
    return found


def endpoint_url(cloudformation, name):
    outputs = cloudformation.describe_stacks(StackName=name)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        if output["OutputKey"] == "EndpointURL":
            return output["OutputValue"]
    raise SystemExit(f"stack {name} has no EndpointURL output")


if __name__ == "__main__":
    sys.exit(main())
