"""The merge template: what `chalice package --merge-template` adds to
chalice's own template (`make package` writes it to build/merge-$STAGE.json).

    python -m deploy.template --stage dev

Both tables (deploy/tables.py), the Gateway Responses
(deploy/gateway_responses.py), and fixed function names with their log groups.
"""
import argparse
import json
import os
import sys

from chalicelib.config import SERVICE_NAME
from deploy import gateway_responses, tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_RETENTION_DAYS = 30


def merge_template(stage, project_dir=ROOT):
    names = tables.stage_table_names(project_dir, stage)
    resources = {
        "UsersTable": tables.cloudformation("users", names["users"]),
        "TokensTable": tables.cloudformation("tokens", names["tokens"]),
    }
    resources.update(gateway_responses.resources())
    # Fixed function names give the log groups fixed names, so that each
    # role may write to its own log group and nothing else.
    for function, suffix in (("APIHandler", "api"), ("TokenAuthorizer", "authorizer")):
        function_name = f"{SERVICE_NAME}-{stage}-{suffix}"
        resources[function] = {"Properties": {"FunctionName": function_name}}
        resources[f"{function}Logs"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": f"/aws/lambda/{function_name}",
                           "RetentionInDays": LOG_RETENTION_DAYS},
        }
    return {"Resources": resources}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", required=True, help="stage of .chalice/config.json")
    args = parser.parse_args(argv)
    print(json.dumps(merge_template(args.stage), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
