"""`make smoke BASE_URL=...` against the real `make run` stack."""
import re
import subprocess

import boto3
import pytest

from stack import ROOT, module_stack

pytestmark = pytest.mark.e2e


stack = module_stack("smoke")


def smoke(base_url):
    return subprocess.run(["make", "--no-print-directory", "smoke", f"BASE_URL={base_url}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def users_items(stack):
    from deploy import tables

    client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{stack.dynamodb_port}",
                          region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    return client.scan(TableName=tables.stage_table_names(ROOT, "local")["users"])["Items"]


def test_smoke_passes_against_a_stack_that_answers_as_deployed(stack):
    run = smoke(stack.base + "/")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "DIFFERS" not in run.stdout
    assert run.stdout.rstrip().endswith(
        "smoke test passed: walkthrough, 401, 403 and 404 as expected; its user deleted")


def test_smoke_deletes_the_user_it_created(stack):
    run = smoke(stack.base)
    assert run.returncode == 0, run.stdout + run.stderr
    username = re.search(r"smoke user (smoke-[0-9a-f]+)", run.stdout).group(1)
    assert username not in str(users_items(stack))
    assert '"event":"account_deleted"' in stack.output()


def test_smoke_fails_and_prints_each_difference(stack):
    """A base URL with a stage path that `make run` does not serve: the
    document, the walkthrough and each gateway answer differ."""
    run = smoke(stack.base + "/prod")
    assert run.returncode != 0
    differences = [line for line in run.stdout.splitlines() if line.startswith("DIFFERS: ")]
    assert any("openapi.json" in line for line in differences)
    assert any("with no token: status 404, expected 401" in line for line in differences)
    assert f"smoke test failed: {len(differences)} differences" in run.stdout


def test_smoke_needs_a_base_url():
    run = subprocess.run(["make", "--no-print-directory", "smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "usage: make smoke BASE_URL=" in run.stderr


def test_smoke_refuses_plain_http_to_another_machine():
    """It sends a password and bearer tokens: never in clear over a network."""
    run = subprocess.run(["make", "--no-print-directory", "smoke",
                          "BASE_URL=http://api.example.com/prod"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "https://" in run.stderr and "smoke user" not in run.stdout
