"""manage.py: create-tables, create-admin, grant-admin, revoke-admin, delete-user,
name-hash."""
import io
import os

import pytest

import manage
from chalicelib import service, stores
from conftest import PASSWORD, Mailbox
from faults import after_the_check, client_error, inject


@pytest.fixture
def cli(dynamodb, monkeypatch):
    """manage.main against the mocked DynamoDB, with stdin from a string."""
    monkeypatch.setattr("devserver.stage.use_endpoint", lambda endpoint: None)

    def run(*argv, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return manage.main(list(argv))
    return run


def test_create_tables_is_idempotent(cli, capsys):
    assert cli("create-tables") == 0
    assert "already there" in capsys.readouterr().out


def test_create_admin_reads_the_password_from_stdin(cli, api):
    assert cli("create-admin", "Root", "root@example.com", stdin="  spaced pass  \n") == 0
    token = api.token("root", "  spaced pass  ")
    assert api.call("GET", "/api/v1/users/me", token=token).json["roles"] == ["admin"]


def test_create_admin_hashes_at_the_cost_of_the_environment_as_the_service_does(
        cli, monkeypatch):
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    assert cli("create-admin", "root", "root@example.com", stdin="root password 1\n") == 0
    assert service.admin.find_user("root").password_hash.startswith("$2b$05$")


def test_create_admin_never_takes_the_password_from_argv(cli):
    with pytest.raises(SystemExit):
        cli("create-admin", "root", "root@example.com", "the password")


def test_create_admin_refuses_invalid_input(cli, capsys):
    assert cli("create-admin", "root", "not-an-email", stdin="long enough pw\n") == 2
    assert "email" in capsys.readouterr().err


def items(dynamodb, table_names):
    """Every item of every table, to show that a refusal wrote nothing."""
    return {kind: sorted(map(repr, dynamodb.scan(TableName=name)["Items"]))
            for kind, name in table_names.items()}


def nothing_left(dynamodb, table_names):
    """No item of any table, once the mail the user had asked for went to the
    mailer (which finds nobody to send it to, and drops it)."""
    sent = Mailbox().deliver()
    return not sent and all(not found for found in items(dynamodb, table_names).values())


def roles(username):
    return stores.users().get_user(service.admin.find_user(username).user_id).roles


@pytest.mark.parametrize("username,email", [("ALICE", "x@example.com"),
                                            ("root", "ALICE@example.com")])
def test_create_admin_refuses_a_taken_username_or_email_and_changes_nothing(
        cli, api, dynamodb, table_names, capsys, username, email):
    api.signup("alice", email="alice@example.com")
    before = items(dynamodb, table_names)
    assert cli("create-admin", username, email, stdin="something else\n") == 1
    err = capsys.readouterr().err
    assert "refused" in err and ("taken" in err or "registered" in err)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert items(dynamodb, table_names) == before
    assert roles("alice") == []
    assert api.login("alice").status == 200


def test_grant_admin_gives_the_role_and_keeps_the_password(cli, api):
    api.signup("alice")
    assert cli("grant-admin", "ALICE") == 0
    assert roles("alice") == ["admin"]
    assert api.login("alice").status == 200


def test_grant_and_revoke_keep_the_users_other_roles(cli, api):
    service.account.signup("alice", "alice@example.com", PASSWORD, roles=["auditor"])
    assert cli("grant-admin", "alice") == 0
    assert roles("alice") == ["auditor", "admin"]
    assert cli("revoke-admin", "alice") == 0
    assert roles("alice") == ["auditor"]


def test_granting_twice_or_revoking_a_non_admin_changes_nothing(cli, api, capsys):
    api.signup("alice")
    assert cli("revoke-admin", "alice") == 0
    assert "nothing was changed" in capsys.readouterr().out
    cli("grant-admin", "alice")
    assert cli("grant-admin", "alice") == 0
    assert "nothing was changed" in capsys.readouterr().out
    assert roles("alice") == ["admin"]


@pytest.mark.parametrize("command", ["grant-admin", "revoke-admin", "delete-user"])
@pytest.mark.parametrize("username", ["nobody", "bad name"])
def test_each_command_refuses_an_unknown_user_in_one_line(cli, api, dynamodb, table_names,
                                                          capsys, command, username):
    api.signup("alice")
    before = items(dynamodb, table_names)
    assert cli(command, username) == 1
    err = capsys.readouterr().err
    assert err == f"{command} {username}: refused: No such user. Nothing was changed.\n"
    assert items(dynamodb, table_names) == before


def delete_me(api, token):
    return api.call("DELETE", "/api/v1/users/me", token=token, body={"password": PASSWORD})


def before_the_write(dynamodb, action):
    """Run ``action`` once, just before the first transaction is sent (its
    own transactions pass untouched); a list that receives its result."""
    done = []

    def hook(**kwargs):
        if not done:
            done.append(None)
            done[0] = action()

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", hook)
    return done


@pytest.mark.parametrize("command,roles_before", [("grant-admin", []),
                                                  ("revoke-admin", ["admin"])])
def test_a_role_write_never_recreates_a_user_deleted_meanwhile(
        cli, api, dynamodb, table_names, capsys, command, roles_before):
    """The user deletes itself between the command's read and its write:
    the write is refused, and no bare item is left to 500 on login and to
    hold the name forever."""
    service.account.signup("alice", "alice@example.com", PASSWORD, roles=roles_before)
    token = api.token("alice")
    deleted = before_the_write(dynamodb, lambda: delete_me(api, token).status)
    assert cli(command, "alice") == 1
    assert deleted == [200]
    assert "deleted, or its deletion began, meanwhile" in capsys.readouterr().err
    assert dynamodb.scan(TableName=table_names["users"])["Items"] == []
    assert api.login("alice").status == 401
    assert api.signup("alice").status == 201


def test_a_role_write_is_refused_when_a_deletion_began_meanwhile(cli, api, dynamodb,
                                                                 table_names, capsys):
    """A deletion marked between the read and the write refuses the write
    too: the user's remaining items stay exactly as the deletion left them."""
    api.signup("alice")
    marked = before_the_write(
        dynamodb, lambda: stores.logins().mark_deleting(service.admin.find_user("alice"), 0))
    assert cli("grant-admin", "alice") == 1
    assert marked == [True]
    assert "deleted, or its deletion began, meanwhile" in capsys.readouterr().err
    assert roles("alice") == []


def test_a_role_write_refuses_a_user_whose_deletion_is_under_way(cli, api, capsys):
    api.signup("alice")
    stores.logins().mark_deleting(service.admin.find_user("alice"), 0)
    assert cli("grant-admin", "alice") == 1
    assert "deletion is under way" in capsys.readouterr().err
    assert roles("alice") == []


def test_delete_user_removes_the_user_and_every_token(cli, api, dynamodb, table_names, capsys):
    tokens = [api.user("alice"), api.token("alice")]
    assert cli("delete-user", "Alice") == 0
    assert "2 live tokens" in capsys.readouterr().out
    assert all(api.call("GET", "/api/v1/users/me", token=t).status == 403 for t in tokens)
    assert nothing_left(dynamodb, table_names)


def test_delete_user_deletes_the_attempts_that_make_run_counted(cli, api, dynamodb, table_names,
                                                                tmp_path, monkeypatch):
    """The attempts item is keyed by the signing secret: an operator's shell
    without JWT_SECRET finds it under the secret that `make run` keeps."""
    (tmp_path / "jwt-secret").write_text(os.environ["JWT_SECRET"])
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path))
    api.signup("alice")
    api.login("alice", "wrong password")
    monkeypatch.delenv("JWT_SECRET")
    assert cli("delete-user", "alice") == 0
    assert nothing_left(dynamodb, table_names)


def test_delete_user_finishes_a_deletion_that_failed_half_way(cli, api, dynamodb, table_names):
    """The owner's DELETE /users/me fails at its last write and the owner
    loses its token: it can neither log in nor retry. The operator's
    deletion finishes the job, and the name and address are free again."""
    token = api.user("alice")
    api.token("alice")
    inject(dynamodb, "TransactWriteItems", lambda p: client_error("ThrottlingException"), times=1,
           when=after_the_check)
    assert delete_me(api, token).status == 503
    assert api.login("alice").status == 401
    assert api.signup("alice").status == 409
    del token  # lost
    assert cli("delete-user", "alice") == 0
    assert nothing_left(dynamodb, table_names)
    assert api.signup("alice", email="alice@example.com").status == 201


def test_delete_user_survives_a_password_change_between_its_read_and_its_mark(
        cli, api, dynamodb, table_names):
    token = api.user("alice")
    changed = []

    def change_meanwhile(**kwargs):
        if not changed:
            changed.append(None)
            changed[0] = api.call("POST", "/api/v1/users/me/password", token=token, body={
                "current_password": PASSWORD, "new_password": "a brand new password"}).status

    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", change_meanwhile)
    assert cli("delete-user", "alice") == 0
    assert changed == [200]
    assert nothing_left(dynamodb, table_names)


def test_delete_user_racing_the_users_own_deletion_reports_it_gone(cli, api, dynamodb,
                                                                    table_names, capsys):
    token = api.user("alice")
    raced = before_the_write(dynamodb, lambda: delete_me(api, token).status)
    assert cli("delete-user", "alice") == 1
    assert raced == [200]
    assert "No such user" in capsys.readouterr().err
    assert nothing_left(dynamodb, table_names)


def test_a_prompt_asks_twice_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    answers = iter(["first one", "second one"])
    monkeypatch.setattr(manage.getpass, "getpass", lambda prompt: next(answers))
    with pytest.raises(SystemExit):
        manage.read_password(Terminal())


def test_name_hash_prints_what_the_logs_carry_for_a_name_and_its_lookalikes(cli, capsys):
    from chalicelib import audit

    assert cli("name-hash", "\u212aate") == 0
    assert capsys.readouterr().out == audit.name_hash("kate") + "\n"


def test_name_hash_of_a_deployed_stage_uses_its_secret_parameter(cli, capsys, monkeypatch):
    from chalicelib import audit, aws, signing_keys

    monkeypatch.delenv("JWT_SECRET_PARAMETER", raising=False)
    local = audit.name_hash("kate")
    aws.ssm().put_parameter(Name="/login-service/dev/jwt-secret", Value="d" * 40,
                            Type="SecureString")
    signing_keys.forget()
    try:
        assert cli("--stage", "dev", "name-hash", "kate") == 0
    finally:
        signing_keys.forget()
    printed = capsys.readouterr().out.strip()
    assert printed != local
    monkeypatch.setenv("JWT_SECRET", "d" * 40)
    monkeypatch.delenv("JWT_SECRET_PARAMETER")
    assert printed == audit.name_hash("kate")


# Where the commands look

# Every command that talks to DynamoDB, with what it needs on its command line.
DYNAMODB_COMMANDS = [("create-tables",), ("create-admin", "root", "root@example.com"),
                     ("grant-admin", "alice"), ("revoke-admin", "alice"),
                     ("delete-user", "alice"), ("create-client", "orders-api"),
                     ("list-clients",), ("delete-client", "0" * 32)]


@pytest.fixture
def nowhere(monkeypatch):
    """The URL of a port nothing listens on; the endpoint a command sets in
    the environment, and the clients it made, are forgotten after it."""
    from chalicelib import aws
    from servers import free_port

    yield f"http://127.0.0.1:{free_port()}"
    os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)  # the environment fixture unset it
    aws.reset()


def unreachable(capsys, argv, stdin="long enough pw\n"):
    """What a command says, on standard error alone, when no DynamoDB answers."""
    import sys

    sys.stdin = io.StringIO(stdin)
    try:
        code = manage.main(list(argv))
    finally:
        sys.stdin = sys.__stdin__
    captured = capsys.readouterr()
    assert code != 0 and captured.out == ""
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err and "briefly" not in err, err
    for setting in ("DYNAMODB_PORT", "AWS_ENDPOINT_URL_DYNAMODB", "--endpoint aws"):
        assert setting in err, err
    return err


@pytest.mark.parametrize("argv", DYNAMODB_COMMANDS, ids=[a[0] for a in DYNAMODB_COMMANDS])
def test_a_command_with_no_dynamodb_at_make_runs_port_names_it_and_what_moves_it(
        capsys, monkeypatch, nowhere, argv):
    """make run on another port: the command says which one it tried."""
    monkeypatch.setenv("DYNAMODB_PORT", nowhere.rsplit(":", 1)[1])
    err = unreachable(capsys, argv)
    assert err.startswith(argv[0] + ":") and nowhere in err


@pytest.mark.parametrize("how", ["AWS_ENDPOINT_URL_DYNAMODB", "--endpoint"])
def test_an_unreachable_endpoint_set_otherwise_is_named_with_its_setting(
        capsys, monkeypatch, nowhere, how):
    argv = ["list-clients"]
    if how == "--endpoint":
        argv = ["--endpoint", nowhere] + argv
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", nowhere)
    monkeypatch.setenv("DYNAMODB_PORT", "1")  # not the one tried
    err = unreachable(capsys, argv)
    assert nowhere in err and f"set by {how}" in err and "127.0.0.1:1 " not in err


def test_verify_email_marks_the_address_verified_and_records_it(cli, api):
    token = api.user()
    assert cli("verify-email", "ALICE") == 0
    assert api.call("GET", "/api/v1/users/me", token=token).json["email_verified"] is True
    events = api.call("GET", "/api/v1/users/me/events", token=token).json["events"]
    assert (events[0]["type"], events[0]["by"], events[0]["ip"]) == ("email_verified",
                                                                     "operator", None)


def test_verify_email_twice_changes_nothing(cli, api, capsys):
    api.signup()
    cli("verify-email", "alice")
    assert cli("verify-email", "alice") == 0
    assert "already verified" in capsys.readouterr().out


def test_verify_email_refuses_an_unknown_user(cli):
    assert cli("verify-email", "nobody") != 0
# --- reset-mfa: a lost phone ----------------------------------------------------

def with_second_factors(api):
    """Alice, with TOTP enabled and a passkey."""
    import authenticator
    from chalicelib import clock, totp

    token = api.user("alice")
    secret = api.call("POST", "/api/v1/users/me/mfa/totp", {"password": PASSWORD},
                      token=token).json["secret"]
    code = totp.code_at(secret, totp.step_of(clock.now()))
    assert api.call("POST", "/api/v1/users/me/mfa/totp/confirm", {"code": code},
                    token=token).status == 200
    options = api.call("POST", "/api/v1/users/me/passkeys/options", token=token).json
    _, made = authenticator.create(options["options"])
    assert api.call("POST", "/api/v1/users/me/passkeys", {
        "challenge_id": options["challenge_id"], "credential": made, "name": "phone"},
        token=token).status == 201
    return token


def test_reset_mfa_removes_every_second_factor(cli, api, capsys):
    token = with_second_factors(api)
    assert api.login().status == 403
    assert cli("reset-mfa", "ALICE") == 0
    assert "no second factor now" in capsys.readouterr().out
    assert api.login().status == 200
    assert api.call("GET", "/api/v1/users/me/mfa", token=token).json == {
        "totp": False, "passkeys": [], "recovery_codes_left": 0}


def test_reset_mfa_is_recorded_by_the_operator(cli, api):
    token = with_second_factors(api)
    cli("reset-mfa", "alice")
    latest = api.call("GET", "/api/v1/users/me/events", token=token).json["events"][0]
    assert (latest["type"], latest["by"], latest["ip"], latest["device"]) == (
        "mfa_disabled", "operator", None, None)


def test_reset_mfa_of_a_user_without_factors_changes_nothing(cli, api, capsys,
                                                             dynamodb, table_names):
    api.user("alice")
    before = items(dynamodb, table_names)
    assert cli("reset-mfa", "alice") == 0
    assert "nothing was changed" in capsys.readouterr().out
    assert items(dynamodb, table_names) == before


def test_reset_mfa_refuses_an_unknown_user(cli, capsys):
    assert cli("reset-mfa", "nobody") == 1
    assert "refused" in capsys.readouterr().err
