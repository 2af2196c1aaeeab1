"""Settings: every one checked at once, where a bad value stops the start."""
import os
import runpy

import bcrypt
import pytest

from chalicelib import config
from conftest import ROOT

LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "login-service-dev-api"}


@pytest.mark.parametrize("name,value", [
    ("TOKEN_LIFETIME_SECONDS", "abc"), ("TOKEN_LIFETIME_SECONDS", "0"),
    ("TOKEN_LIFETIME_SECONDS", "-5"), ("TOKEN_LIFETIME_SECONDS", " 60"),
    ("TOKEN_LIFETIME_SECONDS", "1_000"), ("TOKEN_LIFETIME_SECONDS", "9" * 5000),
    ("BCRYPT_ROUNDS", "3"), ("BCRYPT_ROUNDS", "17"), ("MAX_TOKENS_PER_USER", "0"),
    ("TOKEN_MAX_LIFETIME_SECONDS", "abc"), ("TOKEN_MAX_LIFETIME_SECONDS", "0"),
    ("TOKEN_MAX_LIFETIME_SECONDS", "-5"), ("TOKEN_MAX_LIFETIME_SECONDS", "30 days"),
    ("TOKEN_MAX_LIFETIME_SECONDS", "31536001"),
    ("EVENT_RETENTION_DAYS", "0"), ("EVENT_RETENTION_DAYS", "90d"), ("EVENT_RETENTION_DAYS", "3651"),
])
def test_a_bad_whole_number_is_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigurationError, match=name):
        config.check()


@pytest.mark.parametrize("value", ["1", "3", "31536000"])
def test_any_whole_number_of_seconds_from_1_is_a_lifetime(monkeypatch, value):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", value)
    config.check()
    assert config.token_lifetime_seconds() == int(value)


def test_a_cap_below_the_lifetime_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "3600")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "3599")
    with pytest.raises(config.ConfigurationError, match="TOKEN_MAX_LIFETIME_SECONDS"):
        config.check()


def test_the_cap_defaults_to_30_days(monkeypatch):
    config.check()
    assert config.token_max_lifetime_seconds() == 2592000


def test_a_cap_equal_to_the_lifetime_is_accepted(monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "3600")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "3600")
    config.check()
    assert config.token_max_lifetime_seconds() == config.token_lifetime_seconds() == 3600


def test_an_unset_cap_is_never_below_a_lifetime_set_beyond_30_days(monkeypatch):
    """A lifetime over 30 days set before the cap existed keeps working, as
    the fixed lifetime it was."""
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "5184000")
    config.check()
    assert config.token_max_lifetime_seconds() == 5184000


@pytest.mark.parametrize("lifetime,window", [
    (172800, 300), (3000, 300), (2999, 299), (600, 60), (20, 2), (19, 1), (10, 1), (9, 1),
    (3, 1), (2, 0), (1, 0)])
def test_the_last_used_window_is_at_most_5_minutes_and_a_tenth_of_the_lifetime(
        monkeypatch, lifetime, window):
    """At least 1 s, except where a 1 s window would let a token in constant
    use die (lifetimes under 3 s; see config.last_used_resolution_seconds)."""
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", str(lifetime))
    assert config.last_used_resolution_seconds() == window


def test_events_are_kept_90_days_unless_the_setting_says_otherwise(monkeypatch):
    assert config.event_retention_days() == 90
    monkeypatch.setenv("EVENT_RETENTION_DAYS", "400")
    config.check()
    assert config.event_retention_days() == 400


@pytest.mark.parametrize("name", ["JWT_SECRET", "JWT_PREVIOUS_SECRET"])
def test_a_short_signing_secret_is_refused_by_name_without_showing_it(monkeypatch, name):
    monkeypatch.setenv(name, "short-secret")
    with pytest.raises(config.ConfigurationError, match=name) as raised:
        config.check()
    assert "short-secret" not in str(raised.value)


def test_a_signing_secret_is_required_unless_one_is_in_ssm(monkeypatch):
    monkeypatch.delenv("JWT_SECRET")
    with pytest.raises(config.ConfigurationError, match="JWT_SECRET"):
        config.check()
    config.check(secret_required=False)
    monkeypatch.setenv("JWT_SECRET_PARAMETER", "/login-service/dev/jwt-secret")
    config.check()


def cold_start():
    """app.py imported afresh, as a Lambda runtime imports the handler."""
    return runpy.run_path(os.path.join(ROOT, "app.py"), run_name="lambda_handler")


def test_a_bad_value_stops_a_lambda_cold_start(monkeypatch):
    for name, value in LAMBDA.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "abc")
    with pytest.raises(config.ConfigurationError, match="TOKEN_LIFETIME_SECONDS"):
        cold_start()


def test_a_good_cold_start_does_no_bcrypt_work(monkeypatch):
    for name, value in LAMBDA.items():
        monkeypatch.setenv(name, value)
    runs = []
    for name in ("hashpw", "checkpw", "kdf", "gensalt"):
        monkeypatch.setattr(bcrypt, name, lambda *a, _n=name, **k: runs.append(_n))
    assert cold_start()["app"].app_name == "login-service"
    assert runs == []


def test_outside_lambda_the_import_leaves_settings_to_each_request(monkeypatch):
    # chalice local and the test client lay the stage's environment over
    # os.environ per request, after the import: checking at import would
    # check the wrong values.
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "abc")
    assert cold_start()["app"].app_name == "login-service"


@pytest.mark.parametrize("args,command", [
    (["local"], "local"), (["--project-dir", ".", "local", "--port", "8000"], "local"),
    (["--debug", "local"], "local"), (["package", "--stage", "local", "out"], "package"),
    (["--project-dir", "local", "deploy"], "deploy"), ([], None)])
def test_the_chalice_command_is_read_past_its_options(args, command):
    assert config._chalice_command(args) == command


@pytest.mark.parametrize("extra", [["--no-autoreload"], []], ids=["no reloader", "reloader"])
def test_plain_chalice_local_stops_at_once_saying_to_run_make_run(extra):
    """chalice local alone has no DynamoDB, tables or secret: every login
    would fail with nothing to say why. It stops before serving, in one line."""
    import subprocess
    import sys

    from servers import free_port

    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    env = {k: v for k, v in os.environ.items() if k != config.LOCAL_SERVER}
    run = subprocess.run([chalice, "local", "--stage", "local", "--port", str(free_port()),
                          *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.stderr.strip().splitlines()[-1] == config.PLAIN_CHALICE_LOCAL
    assert "Serving on" not in run.stdout + run.stderr


# --- the sessions page's address, and passkeys' relying party ---------------------

def test_public_url_defaults_to_localhost_on_make_runs_port():
    assert config.public_url({}) == "http://localhost:8000/"
    assert config.public_url({"PORT": "9001"}) == "http://localhost:9001/"


def test_the_rp_id_defaults_to_public_urls_host_and_the_origin_is_its_origin():
    env = {"PUBLIC_URL": "https://login.example.com:8443/app/"}
    assert config.webauthn_rp_id(env) == "login.example.com"
    assert config.webauthn_origin(env) == "https://login.example.com:8443"


def test_the_rp_id_may_be_a_parent_domain_of_the_host():
    env = {"PUBLIC_URL": "https://login.example.com/", "WEBAUTHN_RP_ID": "example.com"}
    assert config.webauthn_rp_id(env) == "example.com"


@pytest.mark.parametrize("env,name", [
    ({"PUBLIC_URL": "ftp://example.com/"}, "PUBLIC_URL"),
    ({"PUBLIC_URL": "https://example.com/?next=1"}, "PUBLIC_URL"),
    ({"PUBLIC_URL": "https://Example.com/"}, "PUBLIC_URL"),
    ({"PUBLIC_URL": "http://127.0.0.1:8000/"}, "PUBLIC_URL"),
    ({"PUBLIC_URL": "https://127.0.0.1:8443/"}, "WEBAUTHN_RP_ID"),
    ({"PUBLIC_URL": "http://login.example.com/"}, "PUBLIC_URL"),
    ({"PUBLIC_URL": "https://login.example.com/", "WEBAUTHN_RP_ID": "other.com"},
     "WEBAUTHN_RP_ID"),
    ({"PUBLIC_URL": "https://login.example.com/", "WEBAUTHN_RP_ID": "ample.com"},
     "WEBAUTHN_RP_ID"),
])
def test_a_bad_public_url_or_rp_id_stops_the_start_by_name(monkeypatch, env, name):
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(config.ConfigurationError, match=name):
        config.check()
