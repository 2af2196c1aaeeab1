"""An HTTP/1.1 server for one WSGI app, on one thread, keeping connections open.

Werkzeug's development server closes every connection after one answer (and
drains the socket to the end after each, so it cannot be told otherwise):
each DynamoDB call of the service then cost a new TCP connection and a new
thread here, where botocore would reuse a connection from its pool. This
server keeps every connection open and serves all of them from one event
loop: requests are answered one at a time, in the order they arrive, with no
thread per connection contending for the interpreter and for the embedded
DynamoDB's lock. It reads each request whole by its Content-Length and
answers with one; it is what the embedded DynamoDB needs and no more (no
chunked requests, no TLS, no HTTP/2). What it cannot read (a malformed
request line or length, a body over DynamoDB's 16 MB, a transfer coding)
gets its 4xx or 501 and the connection closes; an app that raises is a 500.
"""
import asyncio
import io
import logging
import sys
import threading
from urllib.parse import unquote

_HOP_BY_HOP = {"connection", "content-length", "keep-alive", "transfer-encoding"}
# The largest body read: DynamoDB's own limit on a request (BatchWriteItem's 16 MB).
MAX_BODY = 16 * 1024 * 1024


class _Refused(Exception):
    """A request this server does not serve: answered with ``status``, then
    the connection closes (what follows on it cannot be told from a body)."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Server:
    """``app`` served on ``host``:``port``; ``late(environ)``, when given,
    names seconds to hold an answer after the app gave it (a fault for tests),
    during which other connections are served."""

    def __init__(self, host, port, app, late=None):
        self.host, self.port, self.app, self.late = host, port, app, late
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._server = self._thread = None
        self._connections = set()  # the tasks serving open connections

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._started.wait()
        if isinstance(self._server, BaseException):
            raise self._server
        return self

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._connection, self.host, self.port, reuse_address=True))
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._server = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    def stop(self):
        """Close the listening socket and every open connection, then the loop."""
        if isinstance(self._server, asyncio.base_events.Server):
            async def close():
                self._server.close()
                for task in list(self._connections):
                    task.cancel()
                await asyncio.gather(*self._connections, return_exceptions=True)
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    async def _connection(self, reader, writer):
        self._connections.add(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                try:
                    method, target, version, headers = _parse(head)
                    body = await reader.readexactly(_length(headers))
                except _Refused as refused:
                    writer.write(_answer(refused.status, [("Connection", "close")], b"", "GET"))
                    await writer.drain()
                    break
                environ = self._environ(method, target, version, headers, body, writer)
                late = self.late(environ) if self.late else 0
                try:
                    status, answer_headers, payload = _call(self.app, environ)
                except Exception:  # noqa: BLE001 - a bug of the app is its 500, as werkzeug's
                    logging.getLogger(__name__).exception("the app failed on %s %s",
                                                          method, environ["PATH_INFO"])
                    status, answer_headers, payload = "500 Internal Server Error", [], b""
                if late:
                    await asyncio.sleep(late)
                writer.write(_answer(status, answer_headers, payload, method))
                await writer.drain()
                if version == "HTTP/1.0" or "close" in headers.get("connection", [""])[0].lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass  # the client closed the connection, or sent what this server does not read
        finally:
            self._connections.discard(asyncio.current_task())
            writer.close()

    def _environ(self, method, target, version, headers, body, writer):
        path, _, query = target.partition("?")
        peer = writer.get_extra_info("peername") or ("", 0)
        environ = {
            "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": unquote(path),
            "QUERY_STRING": query, "SERVER_NAME": self.host, "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": version, "REMOTE_ADDR": peer[0],
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": headers.get("content-type", [""])[0],
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, values in headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = ",".join(values)
        return environ


def _parse(head):
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ")
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
        raise _Refused("400 Bad Request")
    method, target, version = request_line
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return method, target, version, headers


def _length(headers):
    """The body's length, by its one Content-Length. A transfer coding is not
    read (501): its body would otherwise be taken for the next request."""
    if "transfer-encoding" in headers:
        raise _Refused("501 Not Implemented")
    lengths = headers.get("content-length", ["0"])
    if len(lengths) != 1 or not lengths[0].isdigit() or not lengths[0].isascii():
        raise _Refused("400 Bad Request")
    if int(lengths[0]) > MAX_BODY:
        raise _Refused("413 Content Too Large")
    return int(lengths[0])


def _call(app, environ):
    chunks, answer = [], {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=status, headers=headers)
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        getattr(result, "close", lambda: None)()
    return answer["status"], answer["headers"], b"".join(chunks)


def _answer(status, headers, payload, method):
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP]
    lines.append(f"Content-Length: {len(payload)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if method == "HEAD" else head + payload
