"""devserver/serve.py, what `make run` runs: the ADMIN_* admin, the kept
signing secret, and the settings checked before anything starts."""
import pytest

from chalicelib import service, stores
from conftest import PASSWORD
from devserver import serve
from devserver import stage as stages
from test_manage import items, roles


def test_the_bootstrap_creates_a_missing_admin(api):
    assert serve.ensure_admin("root", "root@example.com", "root password 1") == "admin root created"
    assert roles("root") == ["admin"]


def test_the_bootstrap_leaves_an_existing_admin_as_it_is(api, dynamodb, table_names):
    service.account.signup("root", "root@example.com", PASSWORD, roles=["admin"])
    before = items(dynamodb, table_names)
    assert "left as it is" in serve.ensure_admin("ROOT", "other@example.com", "another pw 1")
    assert items(dynamodb, table_names) == before
    assert api.login("root").status == 200


@pytest.mark.parametrize("existing_roles", [[], ["auditor"]])
def test_the_bootstrap_refuses_a_name_that_belongs_to_a_non_admin(api, dynamodb, table_names,
                                                                  existing_roles):
    service.account.signup("root", "squatter@example.com", PASSWORD, roles=existing_roles)
    before = items(dynamodb, table_names)
    with pytest.raises(serve.Refused, match="ADMIN_USERNAME 'root'.*not an admin"):
        serve.ensure_admin("root", "root@example.com", "root password 1")
    assert items(dynamodb, table_names) == before


def test_the_bootstrap_refuses_a_taken_email(api, dynamodb, table_names):
    api.signup("alice", email="root@example.com")
    before = items(dynamodb, table_names)
    with pytest.raises(serve.Refused, match="ADMIN_EMAIL"):
        serve.ensure_admin("root", "ROOT@example.com", "root password 1")
    assert items(dynamodb, table_names) == before


def test_the_bootstrap_refuses_an_invalid_setting_naming_it(api):
    with pytest.raises(serve.Refused, match="ADMIN_EMAIL"):
        serve.ensure_admin("root", "not-an-email", "root password 1")


def test_the_bootstrap_refuses_an_account_being_deleted(api):
    service.account.signup("root", "root@example.com", PASSWORD, roles=["admin"])
    stores.logins().mark_deleting(service.admin.find_user("root"), 0)
    with pytest.raises(serve.Refused, match="deletion"):
        serve.ensure_admin("root", "root@example.com", "root password 1")


def test_a_generated_secret_is_kept_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("JWT_SECRET")
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path / ".local"))
    first = stages.kept_secret()
    assert len(first) >= 32 and stages.kept_secret() == first
    assert (tmp_path / ".local" / "jwt-secret").stat().st_mode & 0o077 == 0


def test_serve_refuses_a_bad_setting_in_one_line_before_starting_anything(monkeypatch, capsys):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "abc")
    monkeypatch.setattr(serve.subprocess, "Popen", lambda *a, **k: pytest.fail("started"))
    assert serve.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TOKEN_LIFETIME_SECONDS" in err and "Traceback" not in err


def test_serve_refuses_a_cap_below_the_lifetime_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "3600")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "60")
    monkeypatch.setattr(serve.subprocess, "Popen", lambda *a, **k: pytest.fail("started"))
    assert serve.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TOKEN_MAX_LIFETIME_SECONDS" in err and "Traceback" not in err


def test_serve_checks_the_stage_variables_as_chalice_local_will_see_them(tmp_path, monkeypatch):
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(
        '{"stages": {"local": {"environment_variables": {"BCRYPT_ROUNDS": "40"}}}}')
    monkeypatch.setattr(stages, "ROOT", str(tmp_path))
    assert "BCRYPT_ROUNDS" in serve.bad_setting("local")
