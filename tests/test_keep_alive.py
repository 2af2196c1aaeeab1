"""The embedded DynamoDB's HTTP server (devserver/keep_alive.py) answers
what it cannot serve with a status and closes, rather than dropping the
connection with a traceback, and never reads a body it does not understand
as the next request."""
import socket

import pytest

from devserver.keep_alive import MAX_BODY, Server
from servers import free_port


@pytest.fixture(scope="module")
def served():
    calls = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("a bug of the app")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = Server("127.0.0.1", free_port(), app).start()
    yield server, calls
    server.stop()


def exchange(server, data):
    """What the server answers to ``data`` on a new connection, until it
    closes it (or two seconds pass)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall(data)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except socket.timeout:
            answer += b"<still open>"
    return answer


@pytest.mark.parametrize("request_head, status", [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1), b"413"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"1d\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n", b"501"),
], ids=["request line", "content length", "negative length", "huge body", "chunked"])
def test_a_request_it_cannot_serve_is_answered_and_closed(served, request_head, status):
    server, calls = served
    before = list(calls)
    answer = exchange(server, request_head)
    assert answer.startswith(b"HTTP/1.1 " + status) and answer.endswith(b"\r\n\r\n")
    assert calls == before  # nothing of it reached the app, not even a chunk
    assert exchange(server, b"GET /after HTTP/1.1\r\nConnection: close\r\n\r\n").endswith(b"ok")


def test_an_app_that_raises_is_a_500_and_the_server_goes_on(served):
    server, _ = served
    answer = exchange(server, b"GET /boom HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500")
    assert exchange(server, b"GET /after HTTP/1.1\r\nConnection: close\r\n\r\n").endswith(b"ok")
