"""The four tables, defined once.

The tests, ``manage.py create-tables`` (and so `make run`) and the deployment
template (deploy/template.py) all build their tables from these definitions,
so the keys cannot drift apart. The functions only read and write items, so
none of this ships in the Lambda package.

users  (pk)                   one item per kind of fact, see chalicelib/user_store.py
tokens (user_id, token_id)    one item per live login session
events (user_id, event_id)    the security log, see chalicelib/event_store.py
mail   (id)                   the outbox: mail waiting to be sent, see chalicelib/outbox.py
"""
import json
import os
import time

from botocore.exceptions import ClientError

TTL_ATTRIBUTE = "expires_at"

DEFINITIONS = {
    "users": {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    },
    "tokens": {
        "KeySchema": [
            {"AttributeName": "user_id", "KeyType": "HASH"},
            {"AttributeName": "token_id", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "user_id", "AttributeType": "S"},
            {"AttributeName": "token_id", "AttributeType": "S"},
        ],
    },
    "events": {
        "KeySchema": [
            {"AttributeName": "user_id", "KeyType": "HASH"},
            {"AttributeName": "event_id", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "user_id", "AttributeType": "S"},
            {"AttributeName": "event_id", "AttributeType": "S"},
        ],
    },
    "mail": {
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
    },
}
# The environment variable that gives the functions each table's name.
VARIABLES = {"users": "USERS_TABLE", "tokens": "TOKENS_TABLE", "events": "EVENTS_TABLE",
             "mail": "MAIL_TABLE"}
# The tables whose changes stream, with what a record holds: the mail
# table's new items invoke the mailer (only the new image: a record never
# carries more of an item than the mailer reads).
STREAMS = {"mail": "NEW_IMAGE"}


def create_tables(client, names, wait_seconds=60, streams=False):
    """Create each missing table of ``names`` ({"users": ..., "tokens": ..., ...}).

    With ``streams``, the tables of STREAMS stream as deployed (the
    deployment's test hands their records to the mailer function); make run
    and the in-process tests leave them off, as their mail pump scans the
    outbox instead. Returns the names it created. Existing tables are left
    as they are.
    """
    created = []
    for kind, name in names.items():
        try:
            client.create_table(
                TableName=name, BillingMode="PAY_PER_REQUEST", **DEFINITIONS[kind],
                **({"StreamSpecification": {"StreamEnabled": True,
                                            "StreamViewType": STREAMS[kind]}}
                   if streams and kind in STREAMS else {}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            continue
        created.append(name)
    for name in created:
        _wait_active(client, name, wait_seconds)
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    return created


def _wait_active(client, name, wait_seconds):
    deadline = time.monotonic() + wait_seconds
    while client.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} did not become active")
        time.sleep(0.5)


def stage_table_names(project_dir, stage):
    """The table names a stage of ``.chalice/config.json`` gives its functions."""
    with open(os.path.join(project_dir, ".chalice", "config.json"), encoding="utf-8") as f:
        env = json.load(f)["stages"][stage]["environment_variables"]
    return {kind: env[variable] for kind, variable in VARIABLES.items()}


def cloudformation(kind, name):
    """The CloudFormation resource of a table, for the deployment template.

    Retained on stack deletion and on replacement, so that tearing down or
    re-creating the stack never drops users; point-in-time recovery and
    encryption at rest are on.
    """
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            **DEFINITIONS[kind],
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            **({"StreamSpecification": {"StreamViewType": STREAMS[kind]}}
               if kind in STREAMS else {}),
        },
    }
