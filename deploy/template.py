"""The merge template: what `chalice package --merge-template` adds to
chalice's own template (`make package` writes it to build/merge-$STAGE.json).

    python -m deploy.template --stage dev

The tables (deploy/tables.py); the Gateway Responses inside the API
definition (deploy/gateway_responses.py); fixed function names with their
log groups; the stage's throttling, reserved concurrency and optional WAF
rule (deploy/protection.py); its access log, metrics and alarms
(deploy/observability.py); the mail table's stream into the mailer, and the
mail settings as parameters (deploy/mail.py); X-Ray when the stage's ``xray`` says so; the
authorizer offered to the account's other APIs (deploy/shared_authorizer.py).
"""
import argparse
import json
import os
import sys

from chalicelib.config import SERVICE_NAME
from deploy import (gateway_responses, mail, observability, protection, shared_authorizer,
                    stages, tables)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_RETENTION_DAYS = observability.LOG_RETENTION_DAYS
# X-Ray's write actions allow no narrower resource than "*": this managed
# policy is all a traced function needs, attached only to a traced stage.
XRAY_POLICY = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}


def merge_template(stage, project_dir=ROOT):
    names = tables.stage_table_names(project_dir, stage)
    api_name = f"{SERVICE_NAME}-{stage}"
    resources = {
        "UsersTable": tables.cloudformation("users", names["users"]),
        "TokensTable": tables.cloudformation("tokens", names["tokens"]),
        "EventsTable": tables.cloudformation("events", names["events"]),
        "MailTable": tables.cloudformation("mail", names["mail"]),
    }
    resources.update(shared_authorizer.resources())
    # Fixed function names give the log groups fixed names, so that each
    # role may write to its own log group and nothing else.
    for function, suffix in (("APIHandler", "api"), ("TokenAuthorizer", "authorizer"),
                             ("Mailer", "mailer")):
        function_name = f"{SERVICE_NAME}-{stage}-{suffix}"
        resources[function] = {"Properties": {"FunctionName": function_name}}
        resources[f"{function}Logs"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": f"/aws/lambda/{function_name}",
                           "RetentionInDays": LOG_RETENTION_DAYS},
        }
    for function, properties in protection.concurrency_properties(project_dir, stage).items():
        resources[function]["Properties"].update(properties)
    for function, properties in mail.environment().items():
        resources[function]["Properties"].update(properties)
    resources.update(mail.event_source())

    access_logs, access_log_setting = observability.access_logs(stage)
    resources.update(access_logs)
    resources.update(observability.account_resources())
    resources.update(observability.metric_filters(stage))
    resources.update(observability.alarms(stage, api_name))
    resources.update(protection.waf_resources(api_name))

    traced = bool(stages.config(project_dir, stage).xray_enabled)
    resources["RestAPI"] = {
        "DependsOn": ["ApiGatewayAccountReady"],
        "Properties": {
            "Name": api_name,
            # Inside the definition, so that a change to them changes the
            # definition, and SAM deploys it.
            "DefinitionBody": {"x-amazon-apigateway-gateway-responses":
                               gateway_responses.swagger()},
            "MethodSettings": protection.method_settings(),
            "AccessLogSetting": access_log_setting,
            "TracingEnabled": traced,
        },
    }
    if traced:
        for role in ("ApiHandlerRole", "TokenAuthorizerRole", "MailerRole"):
            resources[role] = {"Properties": {"ManagedPolicyArns": [XRAY_POLICY]}}
    return {
        "Parameters": {**protection.concurrency_parameter(), **protection.waf_parameter(),
                       **observability.parameters(), **mail.parameters()},
        "Conditions": {**protection.conditions(), **observability.conditions()},
        "Resources": resources,
        "Outputs": shared_authorizer.outputs(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", required=True, help="stage of .chalice/config.json")
    args = parser.parse_args(argv)
    print(json.dumps(merge_template(args.stage), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
