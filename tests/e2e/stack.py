"""Starting the real `make run` stack (chalice local + the embedded
DynamoDB) as processes, for the end-to-end tests."""
import json
import os
import re
import signal
import subprocess
import time

from servers import free_port, serving

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Stack:
    def __init__(self, log_path, **env):
        self.port = free_port()
        self.dynamodb_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, "PORT": str(self.port), "DYNAMODB_PORT": str(self.dynamodb_port),
                    "BCRYPT_ROUNDS": "4", "JWT_SECRET": "e2e-" + "0123456789abcdef" * 3,
                    # Beside the log, never the repository's own .local/ (a
                    # developer's data, and a lock that one make run holds).
                    "LOCAL_DATA_DIR": os.path.join(os.path.dirname(log_path), "local")}
        for name in ("AWS_ENDPOINT_URL_DYNAMODB", "USERS_TABLE", "TOKENS_TABLE", "EVENTS_TABLE",
                     "ADMIN_USERNAME", "ADMIN_EMAIL", "ADMIN_PASSWORD", "TOKEN_LIFETIME_SECONDS",
                     "TOKEN_MAX_LIFETIME_SECONDS", "MAX_TOKENS_PER_USER", "EMAIL_FROM",
                     "PUBLIC_URL", "AWS_ENDPOINT_URL_SESV2", "RESET_LINK_SECONDS",
                     "VERIFY_LINK_SECONDS"):
            self.env.pop(name, None)
        self.env.update(env)
        self.process = None

    def start(self, timeout=60):
        self.log = open(self.log_path, "wb")
        # A new session, as a terminal would give it, with Ctrl-C's default
        # meaning restored (a background shell may have left it ignored).
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"], cwd=ROOT, env=self.env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            served = serving(self.base + "/", self.process, timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError("make run did not serve in time:\n" + self.output()) from None
        if not served:
            self.log.close()
            raise RuntimeError("make run exited early:\n" + self.output())
        return self

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def mail(self, to=None):
        """The messages make run printed (to ``to``), oldest first."""
        lines = [json.loads(line) for line in self.output().splitlines()
                 if line.startswith('{"event":"email",')]
        return [m for m in lines if to is None or m["to"] == to]

    def link(self, to, kind, seen=0, timeout=10):
        """The secret of the first ``kind`` link to ``to`` printed after the
        first ``seen`` messages to it, waiting for it to be sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.mail(to)[seen:]:
                found = re.search(rf"#{kind}=(\S+)", message["text"])
                if found:
                    return found.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no {kind} link to {to} within {timeout} s:\n" + self.output())

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        finally:
            self.log.close()


def module_stack(name, **env):
    """A pytest fixture: one make run stack for the test module, its log in
    a folder ``name`` of pytest's own, stopped when the module is done."""
    import pytest

    @pytest.fixture(scope="module")
    def stack(tmp_path_factory):
        running = Stack(tmp_path_factory.mktemp(name) / "run.log", **env).start()
        yield running
        running.stop()
    return stack
