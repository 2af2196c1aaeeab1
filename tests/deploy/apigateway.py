"""API Gateway and the Lambda runtime, as deployed, in front of the built zip.

Everything is read from the stage's build/<stage>/sam.json: the stage, the
routes and their integrations, the authorizer and its identity source, each
function's handler and environment, the Gateway Responses. Each function runs in its
own fresh interpreter (:class:`Runtime`) that sees only the unpacked zip
(first on its path), boto3 as the Lambda Python runtime provides it, and the
standard library; it reaches AWS (a moto server of the test process) only
over HTTP, so moto is never on its import path.

:class:`Gateway` does what API Gateway does with a request: it matches the
route, sends a TOKEN event to the authorizer, evaluates the returned policy
against the method ARN (an explicit Deny wins; a policy that does not cover
the ARN denies), passes the context on as strings, sends a REST (v1) proxy
event to the integration and checks the proxy answer's shape, answering
with the template's Gateway Responses where API Gateway answers itself.
"""
import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

ACCOUNT = "123456789012"
REGION = "us-east-1"
API_ID = "a1b2c3d4e5"
CLIENT_IP = "192.0.2.10"

# The Lambda runtime's side: imports the handler named by _HANDLER as the
# runtime does, answers one event per line of stdin on its answers pipe
# (standard output is the function's log, as in Lambda), and at the end
# names every file under the task folder that Python imported or opened.
RUNTIME = r"""
import importlib, json, os, sys, traceback
task, answers = os.path.realpath(sys.argv[1]), os.fdopen(int(sys.argv[2]), "w", buffering=1)
opened = set()
sys.addaudithook(lambda event, args: opened.add(args[0])
                 if event == "open" and isinstance(args[0], str) else None)


class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    memory_limit_in_mb, aws_request_id = 512, "request"

    def get_remaining_time_in_millis(self):
        return 10000


module, _, name = os.environ["_HANDLER"].rpartition(".")
handler = getattr(importlib.import_module(module), name)
answers.write("{}\n")
for line in sys.stdin:
    try:
        answer = {"result": handler(json.loads(line), Context())}
    except Exception as exc:  # the invocation fails, as in Lambda, which logs the trace
        traceback.print_exc()
        sys.stdout.flush()
        answer = {"error": type(exc).__name__}
    answers.write(json.dumps(answer) + "\n")
used = {m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
used = {os.path.relpath(os.path.realpath(p), task) for p in used | opened}
answers.write(json.dumps({"used": sorted(p for p in used if not p.startswith(".."))}) + "\n")
"""


def resolved(value, parameters):
    """A template value with each ``{"Ref": parameter}`` replaced by its value."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameters[value["Ref"]]
    return value


class Runtime:
    """One function of the template, running in its own interpreter, its
    environment's parameters given their values by ``parameters``, and
    ``environment`` laid over it."""

    def __init__(self, function, task, runtime, endpoint, log_path, parameters=None,
                 environment=None):
        properties = function["Properties"]
        variables = properties.get("Environment", {}).get("Variables", {})
        env = {
            **{name: resolved(value, parameters or {}) for name, value in variables.items()},
            "_HANDLER": properties["Handler"],
            "AWS_LAMBDA_FUNCTION_NAME": properties["FunctionName"],
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "lambda", "AWS_SECRET_ACCESS_KEY": "lambda",
            "AWS_SESSION_TOKEN": "lambda",
            # Every AWS call goes to the fake AWS, over HTTP.
            "AWS_ENDPOINT_URL": endpoint,
            "LAMBDA_TASK_ROOT": task, "PYTHONDONTWRITEBYTECODE": "1",
            # The task folder first, then the runtime's boto3; no site-packages (-S).
            "PYTHONPATH": os.pathsep.join([task, runtime]),
            "PATH": os.environ["PATH"], "TZ": ":UTC",
            **(environment or {}),
        }
        self.environment = env
        self.log = open(log_path, "wb")
        read, write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-S", "-c", RUNTIME, task, str(write)], cwd=task, env=env,
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, pass_fds=(write,))
        os.close(write)
        self.answers = os.fdopen(read)
        self.log_path = log_path
        if self._answer() != {}:
            raise AssertionError("the handler did not load")

    def _answer(self):
        line = self.answers.readline()
        if not line:
            self.process.wait(timeout=10)
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                raise AssertionError("the function's interpreter died:\n" + f.read())
        return json.loads(line)

    def invoke(self, event):
        """The handler's answer: ("result", value) or ("error", exception type)."""
        self.process.stdin.write((json.dumps(event) + "\n").encode())
        self.process.stdin.flush()
        ((kind, value),) = self._answer().items()
        return kind, value

    def finish(self):
        """Ends the interpreter; the files it used, relative to the task folder."""
        self.process.stdin.close()
        used = self._answer()["used"]
        self.process.wait(timeout=10)
        self.log.close()
        return set(used)

    def output(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@dataclass
class Answer:
    status: int
    headers: dict
    body: str
    via: str  # "integration", or the Gateway Response type that answered
    authorizer: dict = field(default_factory=dict)  # the context the integration got

    @property
    def json(self):
        return json.loads(self.body) if self.body else None


def _glob(pattern, text):
    """IAM's wildcards: * any run of characters, ? one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text) is not None


def _listed(value):
    return value if isinstance(value, list) else [value]


def policy_allows(policy, method_arn):
    """API Gateway's reading of an authorizer's policy for one method ARN."""
    effects = set()
    for statement in _listed(policy["Statement"]):
        actions = [a.lower() for a in _listed(statement["Action"])]
        if not any(_glob(a, "execute-api:invoke") for a in actions):
            continue
        if any(_glob(r, method_arn) for r in _listed(statement["Resource"])):
            effects.add(statement["Effect"])
    return "Allow" in effects and "Deny" not in effects


def context_as_strings(context):
    """The authorizer's context as the integration receives it. API Gateway
    refuses (500) a context with an object, a list or a null in it."""
    passed = {}
    for key, value in (context or {}).items():
        if isinstance(value, bool):
            passed[key] = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            passed[key] = str(value)
        else:
            return None
    return passed


class Gateway:
    """The REST API of the template, its stage, and its functions."""

    def __init__(self, template, runtimes):
        api = template["Resources"]["RestAPI"]["Properties"]
        self.stage = api["StageName"]
        self.definition = api["DefinitionBody"]
        self.responses = self.definition["x-amazon-apigateway-gateway-responses"]
        self.runtimes = runtimes  # by template resource name
        self.routes = [(path, re.compile("".join(
            "(?P<%s>[^/]+)" % part[1:-1] if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", path)))) for path in self.definition["paths"]]
        # API Gateway prefers a literal segment to a parameter.
        self.routes.sort(key=lambda route: route[0].count("{"))
        self.called = []  # (method, route, status)

    def _function(self, uri):
        """The template resource an integration or authorizer URI invokes."""
        return re.search(r"\$\{(\w+)\.Arn\}", uri["Fn::Sub"]).group(1)

    def gateway_response(self, kind):
        response = self.responses[kind]
        headers = {"Content-Type": "application/json"}
        for name, value in response["responseParameters"].items():
            headers[name.removeprefix("gatewayresponse.header.")] = value.strip("'")
        return Answer(int(response["statusCode"]), headers,
                      response["responseTemplates"]["application/json"], kind)

    def _match(self, path):
        for route, pattern in self.routes:
            found = pattern.fullmatch(path)
            if found:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None, None

    def request(self, method, path, body=None, headers=None, query=None):
        answer, route = self._request(method, path, body, dict(headers or {}), query)
        self.called.append((method, route, answer.status))
        return answer

    def _request(self, method, path, body, headers, query):
        route, parameters = self._match(path)
        operation = self.definition["paths"].get(route, {}).get(method.lower())
        if operation is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN"), route
        method_arn = (f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{self.stage}/{method}"
                      f"{path}")
        context = None
        for requirement in operation.get("security", []):
            (name,) = requirement
            scheme = self.definition["securityDefinitions"][name]
            authorizer = scheme["x-amazon-apigateway-authorizer"]
            assert authorizer["type"] == "token" and scheme["in"] == "header", scheme
            # A TOKEN authorizer's identity source is the scheme's header.
            header = authorizer.get("identitySource", "method.request.header." + scheme["name"])
            header = header.removeprefix("method.request.header.")
            token = next((v for k, v in headers.items() if k.lower() == header.lower()), None)
            if not token:
                return self.gateway_response("UNAUTHORIZED"), route
            kind, verdict = self.runtimes[self._function(authorizer["authorizerUri"])].invoke(
                {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn})
            if kind == "error":
                return self.gateway_response("AUTHORIZER_CONFIGURATION_ERROR"), route
            if not policy_allows(verdict["policyDocument"], method_arn):
                return self.gateway_response("ACCESS_DENIED"), route
            context = context_as_strings(verdict.get("context"))
            if context is None:
                return self.gateway_response("AUTHORIZER_CONFIGURATION_ERROR"), route
            context["principalId"] = verdict["principalId"]
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", integration
        headers.setdefault("Host", f"{API_ID}.execute-api.{REGION}.amazonaws.com")
        headers.setdefault("X-Forwarded-For", CLIENT_IP)
        now = time.time()
        event = {
            "resource": route, "path": path, "httpMethod": method,
            "headers": headers or None,
            "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
            "pathParameters": parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "r3s0urc3", "resourcePath": route, "httpMethod": method,
                "path": f"/{self.stage}{path}", "stage": self.stage, "accountId": ACCOUNT,
                "apiId": API_ID, "protocol": "HTTP/1.1", "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(now * 1000),
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "domainName": headers["Host"], "domainPrefix": API_ID,
                "identity": {"sourceIp": CLIENT_IP, "userAgent": headers.get("User-Agent")},
                **({"authorizer": context} if context is not None else {}),
            },
            "body": body, "isBase64Encoded": False,
        }
        kind, result = self.runtimes[self._function(integration["uri"])].invoke(event)
        if kind == "error" or not _proxy_answer(result):
            # "Malformed Lambda proxy response", or the function failed.
            answer = self.gateway_response("DEFAULT_5XX")
            answer.status = 502
            return answer, route
        response_headers = {"Content-Type": "application/json", **(result.get("headers") or {})}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            response_headers[name] = ", ".join(values)
        return Answer(result["statusCode"], response_headers, result.get("body") or "",
                      "integration", context or {}), route

    def call(self, method, path, body=None, token=None, query=None, headers=None):
        """A JSON request, as a client sends it."""
        sent = {"Content-Type": "application/json", "User-Agent": "deploy-test",
                **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return self.request(method, path, None if body is None else json.dumps(body), sent,
                            query)


def _proxy_answer(result):
    """Whether API Gateway accepts ``result`` as a Lambda proxy answer."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return False
    if set(result) - {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded",
                      "cookies"}:
        return False
    headers = result.get("headers") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        return False
    return result.get("body") is None or isinstance(result["body"], str)
