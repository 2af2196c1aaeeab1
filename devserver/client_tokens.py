"""ClientRequestToken of TransactWriteItems, honoured as DynamoDB honours it.

DynamoDB: a token is valid for 10 minutes after the first request that used
it completed. Within that window, the same token with the same request
returns success without applying it again; the same token with any other
parameter changed is an IdempotentParameterMismatchException. A request that
failed is not remembered, so its retry is applied as a new one. After the
window, the token is new again. moto ignores the token, so a write whose
answer came too late and was retried (botocore reuses the token of a call
for each of its attempts) would be applied twice.

Tokens are scoped by the caller's access key and region, as DynamoDB scopes
them by account and region. The server serves one request at a time, so a
request with a token never meets another still in progress with the same
one (DynamoDB's TransactionInProgressException).
"""
import hashlib
import io
import json
import re
import time

WINDOW_SECONDS = 600
MISMATCH = json.dumps({
    "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
    "message": "The request uses the same client token as a previous, but non-identical "
               "request.",
}).encode()
_CREDENTIAL = re.compile(r"Credential=([^/]*)/[^/]*/([^/]*)/")


class ClientTokens:
    def __init__(self, window_seconds=WINDOW_SECONDS, clock=time.monotonic):
        self.window_seconds, self.clock = window_seconds, clock
        self._done = {}  # (access key, region, token) -> (digest, completed at, answer)

    def serve(self, app, environ, start_response):
        """Answer a TransactWriteItems request through ``app`` (a WSGI app), or
        from what its token's first success answered."""
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            request = json.loads(body)
            token = request.pop("ClientRequestToken", None)
        except (ValueError, AttributeError):
            token = None  # moto answers what is wrong with it
        if not isinstance(token, str):
            return list(app(environ, start_response))
        found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        key = (*(found.groups() if found else ("", "")), token)
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        self._forget_expired()
        if key in self._done:
            earlier, _, (status, headers, answer) = self._done[key]
            if earlier != digest:
                start_response("400 Bad Request", [
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("Content-Length", str(len(MISMATCH)))])
                return [MISMATCH]
            start_response(status, headers)
            return [answer]
        seen = {}

        def capture(status, headers, exc_info=None):
            seen.update(status=status, headers=list(headers))
            return start_response(status, headers, exc_info)

        answer = b"".join(app(environ, capture))
        if seen.get("status", "").startswith("200"):
            self._done[key] = (digest, self.clock(), (seen["status"], seen["headers"], answer))
        return [answer]

    def _forget_expired(self):
        """Tokens are remembered in the order they completed (a token comes
        back only once forgotten), so the expired ones are the first few:
        every transaction carries a token (botocore makes one per call),
        and a busy `make run` holds tens of thousands."""
        oldest = self.clock() - self.window_seconds
        while self._done:
            key = next(iter(self._done))
            if self._done[key][1] > oldest:
                break
            del self._done[key]
