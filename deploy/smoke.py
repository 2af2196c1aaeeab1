"""`make smoke BASE_URL=...`: does a deployed stage (or `make run`) answer as it should?

    python -m deploy.smoke https://<id>.execute-api.<region>.amazonaws.com/prod

Generates a client from the stage's own OpenAPI document, runs the README
walkthrough through it (tests/e2e/client_walkthrough.py) as a new user,
checks API Gateway's own 401, 403 and 404 against their one definition
(deploy/gateway_responses.py), and deletes the user it created. Prints each
difference and exits 1 if there is any.
"""
import argparse
import importlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

import requests

from deploy import gateway_responses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALKTHROUGH = os.path.join(ROOT, "tests", "e2e", "client_walkthrough.py")
ME = "/api/v1/users/me"
TIMEOUT = 15
# `make run` serves plain HTTP on this machine; anywhere else, a password
# and bearer tokens must not cross the network in clear.
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def load_walkthrough(base, folder):
    """The walkthrough module, with a client generated from ``base``'s document."""
    document = os.path.join(folder, "openapi.json")
    reply = requests.get(base + "/api/v1/openapi.json", timeout=TIMEOUT)
    reply.raise_for_status()
    with open(document, "wb") as f:
        f.write(reply.content)
    config = os.path.join(folder, "generator.yaml")
    with open(config, "w", encoding="utf-8") as f:
        f.write("post_hooks: []\n")
    generator = os.path.join(os.path.dirname(sys.executable), "openapi-python-client")
    run = subprocess.run([generator, "generate", "--path", document, "--meta", "none",
                          "--config", config, "--output-path",
                          os.path.join(folder, "login_service_client")],
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise RuntimeError("could not generate a client: " + run.stdout + run.stderr)
    sys.path[:0] = [folder, os.path.dirname(WALKTHROUGH)]
    return importlib.import_module("client_walkthrough")


def gateway_differences(base):
    """API Gateway's own answers, each against its one definition."""
    checks = [("no token", "GET", ME, {}, "UNAUTHORIZED"),
              ("a bad token", "GET", ME, {"Authorization": "Bearer a.b.c"}, "ACCESS_DENIED"),
              ("an unknown route", "GET", "/api/v1/no-such-route", {},
               "MISSING_AUTHENTICATION_TOKEN")]
    found = []
    for what, method, path, headers, kind in checks:
        status, expected_headers, body = gateway_responses.http(kind)
        reply = requests.request(method, base + path, headers=headers, timeout=TIMEOUT)
        where = f"{method} {path} with {what}"
        if reply.status_code != status:
            found.append(f"{where}: status {reply.status_code}, expected {status}")
        try:
            answer = reply.json()
        except ValueError:
            answer = reply.text[:200]
        if answer != json.loads(body):
            found.append(f"{where}: body {answer!r}, expected {json.loads(body)!r}")
        for name, value in expected_headers.items():
            got = reply.headers.get(name)
            if name == "Content-Type" and got and got.split(";")[0] == value:
                continue
            if got != value:
                found.append(f"{where}: header {name} {got!r}, expected {value!r}")
    return found


def delete_user(base, username, password):
    """Deletes the walkthrough's user; the differences if it cannot."""
    login = requests.post(base + "/api/v1/login", json={"username": username,
                                                        "password": password}, timeout=TIMEOUT)
    if login.status_code != 200:
        return [f"cleanup: login as {username} answered {login.status_code} {login.text[:200]}"]
    deleted = requests.delete(base + ME, json={"password": password}, timeout=TIMEOUT,
                              headers={"Authorization": f"Bearer {login.json()['token']}"})
    if deleted.status_code != 200 or deleted.json().get("deleted") is not True:
        return [f"cleanup: DELETE {ME} answered {deleted.status_code} {deleted.text[:200]}"]
    return []


def smoke(base):
    """Every difference found, as lines of text."""
    base = base.rstrip("/")
    username = "smoke-" + secrets.token_hex(6)
    print(f"smoke user {username} at {base}", flush=True)
    found = []
    with tempfile.TemporaryDirectory() as folder:
        try:
            walkthrough = load_walkthrough(base, folder)
        except (requests.RequestException, RuntimeError) as exc:
            walkthrough = None
            found.append(f"GET /api/v1/openapi.json: {exc}")
        if walkthrough is not None:
            found += walk(walkthrough, base, username)
    return found + gateway_differences(base)


def walk(walkthrough, base, username):
    found = []
    try:
        walkthrough.main(base, username)
    except Exception as exc:  # noqa: BLE001 - every failure is a difference to print
        found.append(f"walkthrough as {username}: {type(exc).__name__}: {exc}")
        login = requests.post(base + "/api/v1/login", timeout=TIMEOUT, json={
            "username": username, "password": walkthrough.PASSWORD})
        if login.status_code == 401:  # never signed up: nothing to delete
            return found
    return found + delete_user(base, username, walkthrough.PASSWORD)


def refusal(base):
    """Why ``base`` is no URL to send a password to, or None."""
    url = urlsplit(base)
    if url.scheme == "https" and url.hostname:
        return None
    if url.scheme == "http" and url.hostname in LOOPBACK:
        return None
    return (f"refusing {base!r}: the smoke test sends a password and tokens, so the URL "
            "must be https:// (http:// only for localhost or 127.0.0.1)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url", help="the stage's URL, e.g. https://ID.execute-api."
                                         "REGION.amazonaws.com/prod")
    base = parser.parse_args(argv).base_url
    reason = refusal(base)
    if reason:
        print(reason, file=sys.stderr)
        return 2
    differences = smoke(base)
    for difference in differences:
        print("DIFFERS:", difference)
    if differences:
        print(f"smoke test failed: {len(differences)} differences")
        return 1
    print("smoke test passed: walkthrough, 401, 403 and 404 as expected; its user deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
