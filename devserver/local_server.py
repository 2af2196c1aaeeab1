"""The HTTP server of `make run`: chalice's local server, answering like API Gateway.

    python -m devserver.local_server --port 8000 --stage local

The app is loaded exactly as `chalice local --no-autoreload` loads it (the
stage's environment laid over ``os.environ``, the routes validated, no
reloader), and served by chalice's own server. Only what API Gateway itself
answers is replaced, by the deployed Gateway Responses
(deploy/gateway_responses.py): chalice local would answer a missing token
``{"message": "Unauthorized"}`` (and an empty Authorization header with a
deny), a deny ``{"Message": ...}``, an unknown route 403 (and crash on a
non-ASCII Authorization header there), and it lets an exception of the
authorizer, or a Content-Length that is not a number, escape as a dropped
connection.
"""
import argparse
import os
import sys
import uuid
from http.server import BaseHTTPRequestHandler

from chalice import local
from chalice.cli.factory import CLIFactory
from chalice.deploy.validate import validate_routes

from chalicelib import config
from deploy import gateway_responses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GatewayAnswer(local.LocalGatewayException):
    """One of API Gateway's own answers, by Gateway Response type."""

    def __init__(self, kind, status=None):
        status, headers, body = gateway_responses.http(kind, status)
        super().__init__({**headers, "x-amzn-RequestId": str(uuid.uuid4())}, body)
        self.CODE = status
        self.kind = kind


class Authorizer(local.LocalGatewayAuthorizer):
    def _prepare_authorizer_event(self, arn, lambda_event, lambda_context):
        # API Gateway takes a blank identity source for a missing one (401,
        # the authorizer never called); chalice would pass "" on, for a 403.
        if not lambda_event.get("headers", {}).get("authorization", "").strip():
            raise local.NotAuthorizedError({}, b"")
        return super()._prepare_authorizer_event(arn, lambda_event, lambda_context)

    def authorize(self, raw_path, lambda_event, lambda_context):
        try:
            return super().authorize(raw_path, lambda_event, lambda_context)
        except local.NotAuthorizedError:
            kind = "UNAUTHORIZED"
        except local.ForbiddenError:
            kind = "ACCESS_DENIED"
        except Exception:  # noqa: BLE001 - raised, or answered nothing: no verdict
            # Deployed, a Lambda authorizer that raises gets API Gateway's
            # "authorizer configuration error"; never an allow.
            kind = "AUTHORIZER_CONFIGURATION_ERROR"
        raise GatewayAnswer(kind)


class Gateway(local.LocalGateway):
    """chalice's LocalGateway with API Gateway's answers for auth and unknown paths."""

    def __init__(self, app_object, config):
        super().__init__(app_object, config)
        self._authorizer = Authorizer(app_object)

    def _generate_lambda_event(self, method, path, headers, body):
        try:
            event = super()._generate_lambda_event(method, path, headers, body)
        except ValueError:  # no route has this path
            raise GatewayAnswer("MISSING_AUTHENTICATION_TOKEN") from None
        # A method the path does not have is, to API Gateway, a resource it
        # does not have either (chalice would answer its own 405). OPTIONS is
        # the CORS preflight, which API Gateway answers for every path.
        methods = self._app_object.routes[event["requestContext"]["resourcePath"]]
        if method != "OPTIONS" and method not in methods:
            raise GatewayAnswer("MISSING_AUTHENTICATION_TOKEN")
        # API Gateway names each request; chalice local does not, and the
        # Lambda context it hands the app is shared by its threads, so its
        # request id cannot tell concurrent requests apart.
        event["requestContext"]["requestId"] = str(uuid.uuid4())
        return event


class RequestHandler(local.ChaliceRequestHandler):
    def __init__(self, request, client_address, server, app_object, config):
        self.local_gateway = Gateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def _generic_handle(self):
        # API Gateway answers a length it cannot read with a 400; chalice's
        # server would raise on it (a dropped connection, a traceback).
        length = self.headers.get("content-length", "0")
        if not (length.isascii() and length.isdigit()):
            self.close_connection = True
            self._send_error_response(GatewayAnswer("DEFAULT_4XX", 400))
            return
        super()._generic_handle()

    # chalice binds each method's handler to its own _generic_handle.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def log_message(self, format, *args):
        """No access log of the standard library's: it prints the request line
        as sent, query string and all, and a token pasted into a URL would
        land in the output. The app's structured `request` line (the route
        template, never the raw path) is the access log, as in Lambda."""


def create_server(host, port, stage, project_dir=ROOT):
    """What `chalice local` builds, with this module's gateway in it."""
    factory = CLIFactory(project_dir, environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)
    app = config.chalice_app
    validate_routes(app.routes)
    # As chalice.local.create_local_server: current_request per thread.
    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app.__class__)
    app.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(app, config, host, port, handler_cls=RequestHandler)


def main(argv=None):
    os.environ[config.LOCAL_SERVER] = "1"  # the app's guard against plain chalice local
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args(argv)
    # Each line as it happens, as in Lambda, even into a pipe or a file.
    sys.stdout.reconfigure(line_buffering=True)
    server = create_server(args.host, args.port, args.stage)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
