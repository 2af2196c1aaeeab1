"""What `make run` runs and supervises: the API of a stage, on this machine.

    python -m devserver.serve [--stage local]

In order: the settings checked (a bad one stops everything before it
starts), the embedded DynamoDB started unless AWS_ENDPOINT_URL_DYNAMODB
names one (with the data it kept in .local/, devserver/kept_data.py), the
stage's tables created when missing, the signing secret
(JWT_SECRET, else the one kept in .local/), the ADMIN_* admin, then chalice's
local server (devserver/local_server.py) until Ctrl-C or a SIGTERM.
"""
import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from marshmallow import ValidationError

import manage
from chalicelib import config, login_store, stores
from chalicelib.errors import Conflict, ServiceError
from chalicelib.terms import ADMIN
from devserver import kept_data, mail_pump
from devserver import stage as stages
from devserver.embedded_dynamodb import EmbeddedDynamoDB

ADMIN_SETTINGS = [f"ADMIN_{k}" for k in ("USERNAME", "EMAIL", "PASSWORD")]


class Refused(Exception):
    """The ADMIN_* settings of `make run` name an account it must not touch."""


def ensure_admin(username, email, password):
    """The ADMIN_* admin of `make run`: created when missing, left as it is
    when it exists and is an admin. A name that belongs to any other account
    is refused, never promoted: `make run` did not create that account."""
    login = stores.logins().get_login(login_store.name(username))
    if login is None:
        try:
            return manage.create_admin(username, email, password)
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


def bad_setting(stage):
    """The first bad setting of `serve`, in one line, or None.

    Checked as chalice local will read them: the stage's variables of
    .chalice/config.json laid over the environment. No JWT_SECRET is
    fine: serve makes one.
    """
    env = {**os.environ, **stages.variables(stage)}
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
        # One log line per DynamoDB call drowns the API's own log.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        embedded = EmbeddedDynamoDB("127.0.0.1", int(os.environ.get("DYNAMODB_PORT", "8001")),
                                    data_file=stages.data_file())
        try:
            embedded.start()
        except kept_data.Unusable as exc:
            print(f"make run refused to start: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"embedded DynamoDB on {stages.local_endpoint()}, its data kept in "
              f"{embedded.data_file} (`make reset` drops it)", flush=True)
    stages.use_endpoint(None)
    stages.create_tables(stages.use_tables(stage))
    os.environ["JWT_SECRET"] = stages.kept_secret()
    admin = [os.environ.get(name) for name in ADMIN_SETTINGS]
    if any(admin) and not all(admin):
        # Half an admin is a typo, not a wish to run without one.
        if embedded is not None:
            embedded.stop()
        missing = ", ".join(name for name, value in zip(ADMIN_SETTINGS, admin) if not value)
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
    # Links lead to the page this stack serves; localhost, not 127.0.0.1,
    # since WebAuthn refuses an IP address as a relying party id.
    os.environ.setdefault("PUBLIC_URL", f"http://localhost:{port}/")
    os.environ.setdefault("EMAIL_FROM", mail_pump.LOCAL_SENDER)
    own_ses = mail_pump.use_local_ses(stages.local_endpoint() if embedded else None)
    pump = mail_pump.MailPump().start()
    print(f"mail goes to the embedded SES, and each message is printed here as a JSON line "
          f"(links lead to {os.environ['PUBLIC_URL']})", flush=True)
    try:
        return supervise(local_server(port, stage))
    finally:
        pump.stop()
        if own_ses is not None:
            own_ses.stop()
        if embedded is not None:
            embedded.stop()


def local_server(port, stage):
    """chalice's local server, answering auth failures and unknown routes
    with the deployed Gateway Responses (devserver/local_server.py). It runs
    without chalice's reloader, which restarts its worker whenever a file in
    the project changes (the tests write some); a stop landing mid-restart
    could orphan the new worker. It gets a process group of its own, so that
    a stop reaches all of it."""
    command = [sys.executable, "-m", "devserver.local_server",
               "--host", "127.0.0.1", "--port", port, "--stage", stage]
    return subprocess.Popen(command, cwd=stages.ROOT, start_new_session=True)


def supervise(child):
    """Until ``child`` exits: Ctrl-C or a SIGTERM (a supervisor, a test)
    stops its whole process group."""
    def stop(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    # Not one blocking wait(): a signal may be delivered to the embedded
    # DynamoDB's thread, and Python runs handlers only in the main thread,
    # so the main thread must wake up now and then to run ours.
    while child.poll() is None:
        time.sleep(0.2)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="local", help="stage of .chalice/config.json")
    return serve(parser.parse_args(argv).stage)


if __name__ == "__main__":
    sys.exit(main())
