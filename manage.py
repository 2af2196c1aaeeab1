"""Operator commands for the login service.

    python manage.py create-tables
    python manage.py create-admin USERNAME EMAIL      (password: prompt or stdin)
    python manage.py grant-admin USERNAME
    python manage.py verify-email USERNAME
    python manage.py revoke-admin USERNAME
    python manage.py delete-user USERNAME
    python manage.py reset-mfa USERNAME               (removes every second factor: a lost phone)
    python manage.py create-client NAME               (prints {"client_id", "client_secret"})
    python manage.py list-clients                     (one JSON object a line)
    python manage.py delete-client CLIENT_ID
    python manage.py name-hash NAME                   (the name_hash of NAME in the logs)

They talk to the DynamoDB of `make run` (127.0.0.1:$DYNAMODB_PORT) unless
AWS_ENDPOINT_URL_DYNAMODB says otherwise; `--endpoint aws` means the real
AWS endpoint of your credentials and region; when nothing answers there, a
command says, in one line, which endpoint it tried and which setting chose
it, and exits 1. Table names come from the stage's environment in
.chalice/config.json (USERS_TABLE / TOKENS_TABLE / EVENTS_TABLE in the
environment win).

`make run` is devserver/serve.py, which creates its admin with create-admin
below; the deployment is built by deploy/ (`make package`), not from here.
"""
import argparse
import getpass
import json
import logging
import sys

from botocore.exceptions import ConnectionError as NoConnection
from marshmallow import ValidationError

from chalicelib import audit, aws, clients, schemas, service
from chalicelib.errors import ClientNotFound, Conflict, ServiceError, UserNotFound
from chalicelib.terms import ADMIN
from devserver import stage as stages


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


def verify_email(username):
    if service.admin.verify_email(username):
        return f"the address of {username} is verified now"
    return f"the address of {username} was already verified; nothing was changed"
def reset_mfa(username):
    from chalicelib.service import factors  # pyotp and fido2 only where they are needed

    if factors.reset(username):
        return f"{username} has no second factor now; its password alone logs in"
    return f"{username} had no second factor; nothing was changed"


USER_COMMANDS = {
    "grant-admin": (grant_admin, "give an existing user the admin role"),
    "revoke-admin": (revoke_admin, "take the admin role from a user"),
    "verify-email": (verify_email, "mark a user's address verified (checked another way)"),
    "delete-user": (delete_user, "delete a user, its tokens and its security log (also "
                                 "finishes a deletion that failed half-way)"),
    "reset-mfa": (reset_mfa, "remove every second factor of a user (TOTP, recovery codes, "
                             "passkeys), as for a lost phone"),
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


def name_hash(stage, name):
    """The ``name_hash`` that failed-login log lines give ``name``, under the
    stage's current signing secret (its SSM parameter on deployed stages)."""
    stages.use_secret(stage)
    return audit.name_hash(name)


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
    commands.add_parser("name-hash", help="the name_hash of NAME in the logs").add_argument("name")
    args = parser.parse_args(argv)

    if args.command == "name-hash":
        print(name_hash(args.stage, args.name))
        return 0
    chosen = stages.use_endpoint(args.endpoint)
    try:
        return dynamodb_command(args)
    except (ServiceError, NoConnection) as exc:
        if not unreachable(exc):
            raise
        # Said once, here: the endpoint tried and what moves it, never a
        # "try again" that no wait would make true.
        print(f"{args.command}: no DynamoDB answers at {aws.dynamodb().meta.endpoint_url} "
              f"(set by {chosen}); another is chosen by {stages.ENDPOINT_SETTINGS}.",
              file=sys.stderr)
        return 1


def unreachable(error):
    """Whether ``error`` comes of finding no DynamoDB at all (refused,
    unresolved, no connection in time). The service answers that as any
    outage, a ServiceUnavailable raised ``from None``, which hides the
    botocore error from tracebacks but keeps it as ``__context__``."""
    while error is not None:
        if isinstance(error, NoConnection):
            return True
        error = error.__context__
    return False


def dynamodb_command(args):
    """Every command but name-hash; an unreachable DynamoDB is main's to tell."""
    names = stages.use_tables(args.stage)
    if args.command == "create-tables":
        stages.create_tables(names)
        return 0
    if args.command in ("create-client", "list-clients", "delete-client"):
        return client_command(args)
    stages.use_secret(args.stage)
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
        if unreachable(exc):
            raise  # main says where it looked
        print(f"{args.command} {args.username}: failed: {exc.message}", file=sys.stderr)
        return 1
    return 0


def client_command(args):
    """The client commands: no signing secret is needed, a client's secret
    is hashed on its own. Standard output holds the command's answer alone
    (create-client's is read by scripts); the service's log lines go to
    standard error meanwhile."""
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
        if unreachable(exc):
            raise  # main says where it looked
        print(f"{args.command}: failed: {exc.message} {exc.fields or ''}".rstrip(),
              file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
