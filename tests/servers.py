"""Servers on this machine, for the tests that start processes and for
`make bench`: a free port, waiting until a server answers, and moto's fake
AWS (DynamoDB, SSM, ...) behind an endpoint URL.

A module of its own at the top of tests/, so that tests/bench.py (a script),
tests/deploy/ and tests/e2e/stack.py all import it by the same name.
"""
import os
import socket
import subprocess
import sys
import time

import boto3
import requests

REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def serving(url, process, timeout):
    """Whether ``url`` answers 200 before ``process`` exits (False when it
    exits first); TimeoutError when neither happens within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return True
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


class FakeAWS:
    """moto's server on 127.0.0.1 at ``endpoint``: in a thread of this
    process, whose moto state it shares (stopped and started again on its
    port, it still holds every table), or with ``own_process`` in a process
    of its own, which takes no interpreter time from a measurement here."""

    def __init__(self, own_process=False):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.own_process = own_process
        self._server = None

    def start(self, timeout=60):
        if self.own_process:
            self._server = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "moto_server"),
                 "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                if not serving(self.endpoint + "/moto-api/", self._server, timeout):
                    raise RuntimeError("moto's server exited at start")
            except BaseException:
                self.stop()
                raise
        else:
            from moto.server import ThreadedMotoServer

            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port,
                                              verbose=False)
            self._server.start()
        return self

    def stop(self):
        if self._server is None:
            return
        if self.own_process:
            self._server.terminate()
            self._server.wait()
        else:
            self._server.stop()
        self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def client(self, service, region=REGION):
        """A boto3 client of ``service`` at this endpoint, with fake credentials."""
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region,
                            aws_access_key_id="x", aws_secret_access_key="x")
