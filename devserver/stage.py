"""A stage of .chalice/config.json, reached from a process outside Lambda.

`make run` (devserver/serve.py) and the operator commands (manage.py) both
work on one: its DynamoDB (by default the one `make run` embeds on
127.0.0.1:$DYNAMODB_PORT), its tables and its signing secret (locally, the
one `make run` keeps in .local/, so that an operator's shell derives the
same keys as the stack it works on). The embedded DynamoDB keeps its data
beside that secret (devserver/kept_data.py): the tokens it whitelists are
signed with the secret and the failed-login attempts are keyed by it, so
the two belong together.
LOCAL_DATA_DIR moves both (a test points it at a folder of its own).
"""
import json
import os
import secrets

from chalicelib import aws
from deploy import tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def local_dir():
    """Where `make run` keeps what must outlive it (not in git)."""
    return os.environ.get("LOCAL_DATA_DIR") or os.path.join(ROOT, ".local")


def secret_file():
    return os.path.join(local_dir(), "jwt-secret")


def data_file():
    """The embedded DynamoDB's data (devserver/kept_data.py)."""
    return os.path.join(local_dir(), "dynamodb.json")


def variables(stage):
    """The stage's environment_variables, as chalice lays them over the environment."""
    with open(os.path.join(ROOT, ".chalice", "config.json"), encoding="utf-8") as f:
        return json.load(f)["stages"][stage].get("environment_variables", {})


def local_endpoint():
    return f"http://127.0.0.1:{os.environ.get('DYNAMODB_PORT', '8001')}"


# What moves the DynamoDB an operator's command talks to, for the line it
# prints when nothing answers there.
ENDPOINT_SETTINGS = ("DYNAMODB_PORT (make run's port), AWS_ENDPOINT_URL_DYNAMODB=URL, "
                     "--endpoint URL, or --endpoint aws (AWS itself)")


def use_endpoint(endpoint):
    """Point every client of this process (and its children) at ``endpoint``;
    the setting that chose the endpoint is returned, for messages."""
    if endpoint:
        chosen = "--endpoint"
    elif os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        chosen, endpoint = "AWS_ENDPOINT_URL_DYNAMODB", os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    else:
        chosen = ("DYNAMODB_PORT" if os.environ.get("DYNAMODB_PORT")
                  else "make run's default port, DYNAMODB_PORT unset")
        endpoint = local_endpoint()
    if endpoint == "aws":
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    else:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        # A local DynamoDB accepts any credentials, but botocore wants some.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset()
    return chosen


def use_tables(stage):
    """The stage's table names (USERS_TABLE / TOKENS_TABLE / EVENTS_TABLE in
    the environment win), set in the environment and returned by kind."""
    names = tables.stage_table_names(ROOT, stage)
    for kind, variable in tables.VARIABLES.items():
        os.environ.setdefault(variable, names[kind])
    return {kind: os.environ[variable] for kind, variable in tables.VARIABLES.items()}


def create_tables(names):
    created = tables.create_tables(aws.dynamodb(), names)
    for kind, name in names.items():
        print(f"{kind} table {name}: {'created' if name in created else 'already there'}")


def kept_secret():
    """JWT_SECRET from the environment, else one kept in local_dir()."""
    if os.environ.get("JWT_SECRET"):
        return os.environ["JWT_SECRET"]
    path = secret_file()
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(secrets.token_urlsafe(48))
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def use_secret(stage):
    """The stage's signing secret, as its functions read it: keys derived
    from it name the log hashes and the failed-attempts items, so that an
    operator's deletion finds the items the service wrote."""
    parameter = variables(stage).get("JWT_SECRET_PARAMETER")
    if parameter:
        os.environ.setdefault("JWT_SECRET_PARAMETER", parameter)
    elif not os.environ.get("JWT_SECRET_PARAMETER"):
        os.environ["JWT_SECRET"] = kept_secret()
