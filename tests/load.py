"""`make load` (and the end of `make bench`): the real `make run` stack under
the load of people using it, as they would in their own integration tests.

CLIENTS clients (16) for DURATION seconds (60), each in a loop: log in twice,
list the tokens, revoke the second token by its id, check that it is denied,
log out. Every answer is checked against what the contract says it must be;
the report gives requests a second, every 5xx, every wrong answer, a login's
median and 99th percentile, and the machine's load average before and
after. Results: a table on stdout and build/load.json.

    .venv/bin/python tests/load.py [--clients 16] [--duration 60]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "e2e")]

from stack import ROOT, Stack  # noqa: E402

PASSWORD = "load password 1"


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.server_errors = []
        self.wrong = []
        self.login_ms = []

    def answer(self, what, reply, expected, started):
        """Count ``reply`` to ``what``; whether it is what the contract says."""
        with self.lock:
            self.requests += 1
            if what == "login":
                self.login_ms.append((time.perf_counter() - started) * 1000)
            if reply.status_code >= 500:
                self.server_errors.append((what, reply.status_code, reply.text[:200]))
                return False
            got = (reply.status_code, _body(reply, expected))
            if got != expected:
                self.wrong.append((what, got, expected))
                return False
            return True


def _body(reply, expected):
    """The part of the body that ``expected`` checks (None: nothing)."""
    if expected[1] is None:
        return None
    return {k: reply.json().get(k) for k in expected[1]}


def client(base, name, until, tally):
    session = requests.Session()
    session.get(base + "/", timeout=30)

    def call(what, method, path, expected, token=None, body=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.perf_counter()
        reply = session.request(method, base + path, json=body, headers=headers, timeout=60)
        return reply if tally.answer(what, reply, expected, started) else None

    login = {"username": name, "password": PASSWORD}
    while time.monotonic() < until:
        first = call("login", "POST", "/api/v1/login", (200, None), body=login)
        second = call("login", "POST", "/api/v1/login", (200, None), body=login)
        if not (first and second):
            continue
        token, other = first.json()["token"], second.json()
        call("list", "GET", "/api/v1/tokens", (200, None), token)
        call("revoke", "DELETE", f"/api/v1/tokens/{other['token_id']}",
             (200, {"revoked": 1}), token)
        call("denied", "GET", "/api/v1/users/me", (403, {"error": "access_denied"}),
             other["token"])
        call("logout", "POST", "/api/v1/logout", (200, {"revoked": 1}), token)
    session.close()


def run(clients, duration):
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(os.path.join(tmp, "make-run.log")).start()
        try:
            names = [f"loader{i}" for i in range(clients)]
            for name in names:
                reply = requests.post(stack.base + "/api/v1/signup", timeout=30, json={
                    "username": name, "email": f"{name}@example.com", "password": PASSWORD})
                assert reply.status_code == 201, reply.text
            tally, load_before = Tally(), os.getloadavg()
            started = time.monotonic()
            until = started + duration
            threads = [threading.Thread(target=client, args=(stack.base, n, until, tally))
                       for n in names]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
        finally:
            stack.stop()
    logins = sorted(tally.login_ms)
    return {
        "clients": clients, "duration_s": round(elapsed, 1), "requests": tally.requests,
        "requests_per_s": round(tally.requests / elapsed, 1),
        "server_errors": len(tally.server_errors), "wrong_answers": len(tally.wrong),
        "login_median_ms": round(statistics.median(logins), 1) if logins else None,
        "login_p99_ms": round(logins[int(len(logins) * 0.99) - 1], 1) if logins else None,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "first_server_errors": tally.server_errors[:5], "first_wrong_answers": tally.wrong[:5],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60)
    args = parser.parse_args()
    figures = run(args.clients, args.duration)
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "load.json"), "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2)
    for key, value in figures.items():
        print(f"{key:28} {value}")
    if figures["server_errors"] or figures["wrong_answers"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
