"""Operator commands for the login service.

    python manage.py create-tables
    python manage.py create-admin USERNAME EMAIL      (password: prompt or stdin)
    python manage.py grant-admin USERNAME
    python manage.py revoke-admin USERNAME
    python manage.py delete-user USERNAME
    python manage.py create-client NAME               (prints {"client_id", "client_secret"})
    python manage.py list-clients                     (one JSON object a line)
    python manage.py delete-client CLIENT_ID
    python manage.py serve                            (what `make run` runs)
    python manage.py name-hash NAME                   (the name_hash of NAME in the logs)

They talk to the DynamoDB of `make run` (127.0.0.1:$DYNAMODB_PORT) unless
AWS_ENDPOINT_URL_DYNAMODB says otherwise; `--endpoint aws` means the real
AWS endpoint of your credentials and region. Table names come from the
stage's environment in .chalice/config.json (USERS_TABLE / TOKENS_TABLE /
EVENTS_TABLE in the environment win).

`serve` runs devserver/ (the local gateway and the embedded DynamoDB); the
deployment is built by deploy/ (`make package`), not from here.
"""
import argparse
import getpass
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time

from marshmallow import ValidationError

from chalicelib import aws, clients, config, login_store, schemas, service, stores
from chalicelib.errors import ClientNotFound, Conflict, ServiceError, UserNotFound
from chalicelib.terms import ADMIN
from deploy import tables

ROOT = os.path.dirname(os.path.abspath(__file__))
SECRET_FILE = os.path.join(ROOT, ".local", "jwt-secret")


def _local_endpoint():
    return f"http://127.0.0.1:{os.environ.get('DYNAMODB_PORT', '8001')}"


def _use_endpoint(endpoint):
    """Point every client of this process (and its children) at ``endpoint``."""
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or _local_endpoint()
    if endpoint == "aws":
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    else:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        # A local DynamoDB accepts any credentials, but botocore wants some.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset()


def _use_stage(stage):
    names = tables.stage_table_names(ROOT, stage)
    for kind, variable in tables.VARIABLES.items():
        os.environ.setdefault(variable, names[kind])
    return {kind: os.environ[variable] for kind, variable in tables.VARIABLES.items()}


def create_tables(names):
    created = tables.create_tables(aws.dynamodb(), names)
    for kind, name in names.items():
        print(f"{kind} table {name}: {'created' if name in created else 'already there'}")


def read_password(stream=None):
    """From a prompt on a terminal, else the first line of standard input."""
    stream = stream or sys.stdin
    if stream.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise SystemExit("The passwords differ.")
        return first
    line = stream.readline()
    # Only the line ending goes: whitespace inside a password is significant.
    return line[:-1] if line.endswith("\n") else line


def create_admin(username, email, password):
    """Create a new admin account.

    A taken username or email is refused by the signup transaction itself
    (Conflict), with nothing written. An existing account is never
    promoted here: with open signup, whoever registered the name first
    would get the role.
    """
    data = schemas.SignupIn().load(
        {"username": username, "email": email, "password": password})
    service.account.signup(data["username"], data["email"], data["password"], roles=[ADMIN])
    return f"admin {data['username']} created"


def grant_admin(username):
    if service.admin.grant_admin(username):
        return f"{username} has the admin role now"
    return f"{username} already had the admin role; nothing was changed"


def revoke_admin(username):
    if service.admin.revoke_admin(username):
        return f"{username} no longer has the admin role"
    return f"{username} did not have the admin role; nothing was changed"


def delete_user(username):
    return f"{username} deleted, with its {service.admin.delete_user(username)} live tokens"


USER_COMMANDS = {
    "grant-admin": (grant_admin, "give an existing user the admin role"),
    "revoke-admin": (revoke_admin, "take the admin role from a user"),
    "delete-user": (delete_user, "delete a user, its tokens and its security log (also "
                                 "finishes a deletion that failed half-way)"),
}


def create_client(name):
    """One JSON object, the only thing on standard output: the secret is
    shown this once (only its hash is kept), and a script can read it."""
    client, secret = clients.create(name)
    return json.dumps({"client_id": client.client_id, "client_secret": secret})


def list_clients():
    return "\n".join(json.dumps({"client_id": c.client_id, "name": c.name,
                                 "created_at": c.created_at}) for c in clients.all_clients())


def delete_client(client_id):
    clients.delete(client_id)
    return f"client {client_id} deleted; its next introspection is refused"


class Refused(Exception):
    """The ADMIN_* settings of `make run` name an account it must not touch."""


def ensure_admin(username, email, password):
    """The ADMIN_* admin of `make run`: created when missing, left as it is
    when it exists and is an admin. A name that belongs to any other account
    is refused, never promoted: `make run` did not create that account."""
    login = stores.logins().get_login(login_store.name(username))
    if login is None:
        try:
            return create_admin(username, email, password)
        except ValidationError as exc:
            raise Refused(" ".join(f"ADMIN_{field.upper()}: {' '.join(map(str, messages))}"
                                    for field, messages in exc.messages.items())) from None
        except Conflict as exc:
            variable = "ADMIN_EMAIL" if exc.code == "email_taken" else "ADMIN_USERNAME"
            raise Refused(f"{variable} is already registered to another account") from None
    if login.deleting:
        raise Refused(f"ADMIN_USERNAME {login.username!r} belongs to an account whose deletion "
                      f"is under way; `manage.py delete-user {login.username}` finishes it")
    user = stores.users().get_user(login.user_id)
    if user is None or ADMIN not in user.roles:
        raise Refused(
            f"ADMIN_USERNAME {login.username!r} belongs to an existing account that is not an "
            "admin, and make run never promotes an account it did not create; check whose it "
            f"is and run `manage.py grant-admin {login.username}`, or choose another name")
    return f"admin {login.username} already exists; left as it is"


def name_hash(stage, name):
    """The ``name_hash`` that failed-login log lines give ``name``, under the
    stage's current signing secret (its SSM parameter on deployed stages)."""
    from chalicelib import audit

    _use_secret(stage)
    return audit.name_hash(name)


def _use_secret(stage):
    """The stage's signing secret, as its functions read it: keys derived
    from it name the log hashes and the failed-attempts items, so that an
    operator's deletion finds the items the service wrote."""
    with open(os.path.join(ROOT, ".chalice", "config.json"), encoding="utf-8") as f:
        parameter = json.load(f)["stages"][stage]["environment_variables"].get(
            "JWT_SECRET_PARAMETER")
    if parameter:
        os.environ.setdefault("JWT_SECRET_PARAMETER", parameter)
    elif not os.environ.get("JWT_SECRET_PARAMETER"):
        os.environ["JWT_SECRET"] = _secret()


def _secret():
    """JWT_SECRET from the environment, else one kept in .local/ (not in git)."""
    if os.environ.get("JWT_SECRET"):
        return os.environ["JWT_SECRET"]
    if not os.path.exists(SECRET_FILE):
        os.makedirs(os.path.dirname(SECRET_FILE), exist_ok=True)
        descriptor = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(secrets.token_urlsafe(48))
    with open(SECRET_FILE, encoding="utf-8") as f:
        return f.read().strip()


def bad_setting(stage):
    """The first bad setting of `serve`, in one line, or None.

    Checked as chalice local will read them: the stage's variables of
    .chalice/config.json laid over the environment. No JWT_SECRET is
    fine: serve makes one.
    """
    with open(os.path.join(ROOT, ".chalice", "config.json"), encoding="utf-8") as f:
        env = {**os.environ, **json.load(f)["stages"][stage].get("environment_variables", {})}
    try:
        config.check(env, secret_required=False)
        for name, default in (("PORT", 8000), ("DYNAMODB_PORT", 8001)):
            config.whole_number(name, default, 1, 65535, env)
    except config.ConfigurationError as exc:
        return str(exc)
    return None


def serve(stage):
    """Embedded DynamoDB (unless one is configured), tables, admin, chalice local."""
    problem = bad_setting(stage)
    if problem:
        print(f"not starting: {problem}", file=sys.stderr)
        return 2
    port = os.environ.get("PORT", "8000")
    embedded = None
    if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        from devserver.embedded_dynamodb import EmbeddedDynamoDB

        # One log line per DynamoDB call drowns the API's own log.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        embedded = EmbeddedDynamoDB("127.0.0.1", int(os.environ.get("DYNAMODB_PORT", "8001")))
        embedded.start()
        print(f"embedded DynamoDB on {_local_endpoint()}", flush=True)
    _use_endpoint(None)
    create_tables(_use_stage(stage))
    os.environ["JWT_SECRET"] = _secret()
    names = [f"ADMIN_{k}" for k in ("USERNAME", "EMAIL", "PASSWORD")]
    admin = [os.environ.get(name) for name in names]
    if any(admin) and not all(admin):
        # Half an admin is a typo, not a wish to run without one.
        if embedded is not None:
            embedded.stop()
        missing = ", ".join(name for name, value in zip(names, admin) if not value)
        print(f"make run refused to start: {missing} is not set (set all three "
              "ADMIN_* variables, or none)", file=sys.stderr, flush=True)
        return 1
    if all(admin):
        try:
            print(ensure_admin(*admin), flush=True)
        except (Refused, ServiceError) as exc:
            if embedded is not None:
                embedded.stop()
            print(f"make run refused to start: {getattr(exc, 'message', exc)}",
                  file=sys.stderr, flush=True)
            return 1
    # chalice's local server, answering auth failures and unknown routes with
    # the deployed Gateway Responses (devserver/local_server.py). It runs without
    # chalice's reloader, which restarts its worker whenever a file in the
    # project changes (the tests write some); a stop landing mid-restart could
    # orphan the new worker. It gets a process group of its own, and Ctrl-C or
    # a SIGTERM (a supervisor, a test) stops that whole group; then the
    # embedded DynamoDB goes.
    command = [sys.executable, "-m", "devserver.local_server",
               "--host", "127.0.0.1", "--port", port, "--stage", stage]
    child = subprocess.Popen(command, cwd=ROOT, start_new_session=True)

    def stop(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        # Not one blocking wait(): a signal may be delivered to the embedded
        # DynamoDB's thread, and Python runs handlers only in the main thread,
        # so the main thread must wake up now and then to run ours.
        while child.poll() is None:
            time.sleep(0.2)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="local", help="stage of .chalice/config.json")
    parser.add_argument("--endpoint", help="DynamoDB endpoint URL, or 'aws'")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create-tables", help="create any missing table")
    admin = commands.add_parser("create-admin", help="create an admin user")
    admin.add_argument("username")
    admin.add_argument("email")
    for name, (_, summary) in USER_COMMANDS.items():
        commands.add_parser(name, help=summary).add_argument("username")
    commands.add_parser("create-client", help="create an introspection client; prints its "
                        "id and secret as JSON").add_argument("name")
    commands.add_parser("list-clients", help="list the introspection clients")
    commands.add_parser("delete-client", help="delete an introspection client").add_argument(
        "client_id")
    commands.add_parser("serve", help="run the API locally, as `make run` does")
    commands.add_parser("name-hash", help="the name_hash of NAME in the logs").add_argument("name")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return serve(args.stage)
    if args.command == "name-hash":
        print(name_hash(args.stage, args.name))
        return 0
    _use_endpoint(args.endpoint)
    names = _use_stage(args.stage)
    if args.command == "create-tables":
        create_tables(names)
        return 0
    if args.command in ("create-client", "list-clients", "delete-client"):
        return client_command(args)
    _use_secret(args.stage)
    try:
        if args.command == "create-admin":
            print(create_admin(args.username, args.email, read_password()))
        else:
            print(USER_COMMANDS[args.command][0](args.username))
    except ValidationError as exc:
        print(f"{args.command}: invalid: {exc.messages}", file=sys.stderr)
        return 2
    except (Conflict, UserNotFound) as exc:
        print(f"{args.command} {args.username}: refused: {exc.message} Nothing was changed.",
              file=sys.stderr)
        return 1
    except ServiceError as exc:
        print(f"{args.command} {args.username}: failed: {exc.message}", file=sys.stderr)
        return 1
    return 0


def client_command(args):
    """The client commands: no signing secret is needed, a client's secret
    is hashed on its own. Standard output holds the command's answer alone
    (create-client's is read by scripts); the service's log lines go to
    standard error meanwhile."""
    from chalicelib import audit

    streams = [(h, h.setStream(sys.stderr)) for h in audit.log.handlers
               if type(h) is logging.StreamHandler]
    try:
        return _client_command(args)
    finally:
        for handler, stream in streams:
            handler.setStream(stream)


def _client_command(args):
    try:
        if args.command == "create-client":
            output = create_client(args.name)
        elif args.command == "list-clients":
            output = list_clients()
        else:
            output = delete_client(args.client_id)
    except ClientNotFound as exc:
        print(f"{args.command} {args.client_id}: refused: {exc.message}", file=sys.stderr)
        return 1
    except ServiceError as exc:
        print(f"{args.command}: failed: {exc.message} {exc.fields or ''}".rstrip(),
              file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
