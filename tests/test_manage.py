"""manage.py: create-tables and create-admin."""
import io

import pytest

import manage
from chalicelib import service


@pytest.fixture
def cli(dynamodb, monkeypatch):
    """manage.main against the mocked DynamoDB, with stdin from a string."""
    monkeypatch.setattr(manage, "_use_endpoint", lambda endpoint: None)

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


def test_create_admin_never_takes_the_password_from_argv(cli):
    with pytest.raises(SystemExit):
        cli("create-admin", "root", "root@example.com", "the password")


def test_create_admin_refuses_invalid_input(cli, capsys):
    assert cli("create-admin", "root", "not-an-email", stdin="long enough pw\n") == 2
    assert "email" in capsys.readouterr().err


def test_create_admin_promotes_an_existing_user_without_touching_its_password(cli, api):
    api.signup("alice")
    assert cli("create-admin", "ALICE", "x@example.com", stdin="something else\n") == 0
    login = service.users().get_login("alice")
    assert login.roles == ["admin"]
    assert service.me(service.Identity(login.user_id, "", "alice", [])).roles == ["admin"]
    assert api.login("alice", "something else").status == 401


def test_create_admin_reports_a_taken_email(cli, api):
    api.signup("alice", email="alice@example.com")
    assert cli("create-admin", "root", "ALICE@example.com", stdin="long enough pw\n") == 1


def test_a_prompt_asks_twice_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    answers = iter(["first one", "second one"])
    monkeypatch.setattr(manage.getpass, "getpass", lambda prompt: next(answers))
    with pytest.raises(SystemExit):
        manage.read_password(Terminal())


def test_a_generated_secret_is_kept_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("JWT_SECRET")
    monkeypatch.setattr(manage, "SECRET_FILE", str(tmp_path / ".local" / "jwt-secret"))
    first = manage._secret()
    assert len(first) >= 32 and manage._secret() == first
    assert (tmp_path / ".local" / "jwt-secret").stat().st_mode & 0o077 == 0


def test_serve_refuses_a_bad_setting_in_one_line_before_starting_anything(monkeypatch, capsys):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "abc")
    monkeypatch.setattr(manage.subprocess, "Popen", lambda *a, **k: pytest.fail("started"))
    assert manage.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TOKEN_LIFETIME_SECONDS" in err and "Traceback" not in err


def test_serve_checks_the_stage_variables_as_chalice_local_will_see_them(tmp_path, monkeypatch):
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(
        '{"stages": {"local": {"environment_variables": {"BCRYPT_ROUNDS": "40"}}}}')
    monkeypatch.setattr(manage, "ROOT", str(tmp_path))
    assert "BCRYPT_ROUNDS" in manage.bad_setting("local")
