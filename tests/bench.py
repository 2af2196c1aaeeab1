"""`make bench`: the service against the floor of a whitelist design.

The authorizer, GET /api/v1/users/me and introspection are invoked the way
Lambda invokes them (the real handlers, real API Gateway events), against
the embedded DynamoDB (moto's server, in its own process) over loopback,
side by side with the bare boto3 calls the same request needs, in turn
request by request. Each figure is the median of several runs of many
requests, with the spread of those run medians.
The security log's cost: a login, a failed login and a revocation, each
with its event writes and without them (the same handler, its transactions
stripped of every write to the events table and of the check that guards
them), in alternating runs. Results: a table on stdout and build/bench.json.
POST /password/forgot for a verified account's address, an unverified
one's and nobody's, side by side (their ratio shows whether its time tells
accounts apart). The embedded DynamoDB as its tables grow: a login (and the bare 2-item
transaction) against tables whose events table holds 50,000 events, side by
side with the same against empty tables, on the embedded DynamoDB of `make
run` in a process of its own (``--growth`` runs this part alone, printing
it without writing build/bench.json; ``--count N`` sets its requests per
run, 40 by default; ``--moto`` measures moto's own transactions and
queries, as `make run` had them before).
"""
import base64
import contextlib
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BUILD = os.path.join(ROOT, "build")
# The dev stage's package (`make package`); both stages ship the same code.
ZIP = os.path.join(BUILD, "dev", "deployment.zip")
RUNS, REQUESTS = 3, 1000
from deploy.package import ZIP_BOUND  # noqa: E402 (ROOT on the path first)


class Context:
    """What Lambda hands a handler as its context."""

    function_name = "bench"
    memory_limit_in_mb = 1769

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self):
        return 10000


def timed(call, count):
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    mean = statistics.fmean(samples)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], mean


def series(call, runs=RUNS, count=REQUESTS):
    """Median and p95 of each run; the figure is the median of the run medians."""
    return _summary([timed(call, count) for _ in range(runs)], runs, count)


def _summary(results, runs, count):
    """(median, p95, mean) of each run: the figures are the medians over runs."""
    medians = [m for m, _, _ in results]
    return {"median_ms": round(statistics.median(medians), 3),
            "p95_ms": round(statistics.median(p for _, p, _ in results), 3),
            "mean_ms": round(statistics.median(m for _, _, m in results), 3),
            "spread_ms": [round(min(medians), 3), round(max(medians), 3)],
            "runs": runs, "requests_per_run": count}


def paired(calls, runs=RUNS, count=REQUESTS):
    """:func:`series` of each of ``calls``, measured in turn request by
    request, so that a machine's load drifting over a run weighs on each
    alike and their ratios stay true (two shared cores drift a lot)."""
    results = {name: [] for name in calls}
    for _ in range(runs):
        samples = {name: [] for name in calls}
        for _ in range(count):
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - started) * 1000)
        for name, values in samples.items():
            mean = statistics.fmean(values)
            values.sort()
            results[name].append((statistics.median(values), values[int(len(values) * 0.95) - 1],
                                  mean))
    return {name: _summary(found, runs, count) for name, found in results.items()}


def quiet():
    """No audit lines on stdout while measuring: they are not the product."""
    import logging

    logging.getLogger("login-service").setLevel(logging.WARNING)


def environment(endpoint):
    os.environ.update({
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
        "USERS_TABLE": "bench-users", "TOKENS_TABLE": "bench-tokens",
        "EVENTS_TABLE": "bench-events", "MAIL_TABLE": "bench-mail",
        "JWT_SECRET": secrets.token_urlsafe(48), "BCRYPT_ROUNDS": "12",
        "MAX_TOKENS_PER_USER": "1000",
    })
    os.environ.pop("JWT_SECRET_PARAMETER", None)


def proxy_event(method, path, ctx, body=None):
    """A REST API (v1) Lambda proxy event, as API Gateway sends it after the
    authorizer allowed the request."""
    return {
        "resource": path, "path": path, "httpMethod": method,
        "headers": {"Host": "bench.execute-api.us-east-1.amazonaws.com",
                    "User-Agent": "bench", "Content-Type": "application/json"},
        "multiValueHeaders": {}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None, "isBase64Encoded": False, "body": body,
        "requestContext": {
            "resourcePath": path, "httpMethod": method, "path": "/dev" + path,
            "stage": "dev", "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "192.0.2.10"},
            "authorizer": dict(ctx or {}, principalId=(ctx or {}).get("user_id", "")),
        },
    }


def request_figures():
    import boto3

    import app as application
    from chalicelib import aws, clock, config, service
    from deploy import tables

    quiet()
    aws.reset()
    names = {kind: os.environ[variable] for kind, variable in tables.VARIABLES.items()}
    tables.create_tables(aws.dynamodb(), names)
    os.environ["BCRYPT_ROUNDS"] = "4"
    service.account.signup("bench", "bench@example.com", "bench password 1")
    os.environ["BCRYPT_ROUNDS"] = "12"
    service.account.signup("slow", "slow@example.com", "bench password 2")
    login = service.login.with_password("bench", "bench password 1", "bench", "192.0.2.10")
    ctx = application.authorizer.decide("Bearer " + login["token"])  # also records first use
    user_id, token_id = ctx["user_id"], ctx["token_id"]

    floor = boto3.session.Session().client("dynamodb", region_name="us-east-1",
                                           config=aws._CLIENT_CONFIG)
    authorizer_event = {"type": "TOKEN", "authorizationToken": "Bearer " + login["token"],
                        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:bench/dev/GET/"
                                     "api/v1/users/me"}
    me_event = proxy_event("GET", "/api/v1/users/me", ctx)

    # Sliding expiry: the authorizer moves a token's expiry with its
    # last_used_at write, once per window. The service's clock is moved
    # ahead of real time by ``step`` seconds per request, so that writes
    # come at the rate a client making a request every ``step`` seconds
    # causes: 1 s, a busy client (one request in window + 1 writes);
    # window + 1 s, a token used more rarely than its window (every
    # request writes, the worst case).
    real_now, ahead = clock.now, [0]
    clock.now = lambda: real_now() + ahead[0]
    key = {"user_id": {"S": user_id}, "token_id": {"S": token_id}}

    def authorizer_every(step):
        def call():
            ahead[0] += step
            answer = application.token_authorizer(authorizer_event, Context())
            assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        return call

    window, lifetime = config.last_used_resolution_seconds(), config.token_lifetime_seconds()
    authorizer_call, authorizer_writing = authorizer_every(1), authorizer_every(window + 1)

    def authorizer_floor():
        floor.get_item(TableName=names["tokens"], ConsistentRead=True, Key=key)

    def authorizer_writing_floor():
        """One consistent read and the one conditional write of a use."""
        ahead[0] += window + 1
        floor.get_item(TableName=names["tokens"], ConsistentRead=True, Key=key)
        now = int(clock.now())
        floor.update_item(
            TableName=names["tokens"], Key=key,
            UpdateExpression="SET last_used_at = :now, expires_at = :expires",
            ConditionExpression="attribute_exists(token_id) AND expires_at > :now AND "
                                "expires_at <= :expires AND "
                                "(attribute_not_exists(last_used_at) OR last_used_at < :stale)",
            ExpressionAttributeValues={":now": {"N": str(now)}, ":stale": {"N": str(now - window)},
                                       ":expires": {"N": str(now + lifetime)}})

    token_key = key
    profile_key = {"pk": {"S": "user#" + user_id}}

    def authorizer_batch_floor():
        """What the authorizer reads since it hands over live roles."""
        floor.batch_get_item(RequestItems={
            names["tokens"]: {"Keys": [token_key], "ConsistentRead": True},
            names["users"]: {"Keys": [profile_key], "ConsistentRead": True}})

    from chalicelib import clients

    client, secret = clients.create("bench")
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    introspect_event = proxy_event("POST", "/api/v1/introspect", None,
                                   urllib.parse.urlencode({"token": login["token"]}))
    introspect_event["headers"] = {**introspect_event["headers"],
                                   "Content-Type": "application/x-www-form-urlencoded",
                                   "Authorization": "Basic " + basic}

    def introspect_call():
        answer = application.app(introspect_event, Context())
        assert json.loads(answer["body"])["active"] is True, answer

    def introspect_floor():
        floor.batch_get_item(RequestItems={
            names["tokens"]: {"Keys": [token_key], "ConsistentRead": True},
            names["users"]: {"Keys": [profile_key, {"pk": {"S": "client#" + client.client_id}}],
                             "ConsistentRead": True}})

    def me_call():
        answer = application.app(me_event, Context())
        assert answer["statusCode"] == 200

    def me_floor():
        floor.get_item(TableName=names["users"], ConsistentRead=True,
                       Key={"pk": {"S": "user#" + user_id}})

    for call in (authorizer_call, authorizer_floor, authorizer_batch_floor, me_call, me_floor,
                 introspect_call, introspect_floor):
        timed(call, 100)  # warm connections and caches
    writes = []
    aws.dynamodb().meta.events.register("before-call.dynamodb.UpdateItem",
                                        lambda **kw: writes.append(1))
    figures = {}
    for group in ({"authorizer": authorizer_call, "authorizer_floor": authorizer_floor,
                   "authorizer_batch_floor": authorizer_batch_floor},
                  {"authorizer_every_use_writes": authorizer_writing,
                   "authorizer_every_use_writes_floor": authorizer_writing_floor},
                  {"users_me": me_call, "users_me_floor": me_floor},
                  {"introspection": introspect_call, "introspection_floor": introspect_floor}):
        writes.clear()  # only the handlers' client counts: the floors use their own
        figures.update(paired(group))
        figures[next(iter(group))]["writes"] = len(writes)
    for name in ("authorizer", "authorizer_every_use_writes", "users_me", "introspection"):
        figures[name]["ratio_to_floor"] = round(
            figures[name]["median_ms"] / figures[name + "_floor"]["median_ms"], 3)
    figures["authorizer"]["mean_ratio_to_floor"] = round(
        figures["authorizer"]["mean_ms"] / figures["authorizer_floor"]["mean_ms"], 3)
    figures["authorizer"]["ratio_to_batch_floor"] = round(
        figures["authorizer"]["median_ms"] / figures["authorizer_batch_floor"]["median_ms"], 3)
    clock.now = real_now

    import bcrypt

    from chalicelib import passwords

    stored = passwords.hash_password("bench password 2")
    figures["bcrypt_cost_12"] = series(
        lambda: bcrypt.checkpw(passwords._prehash("bench password 2"), stored.encode()),
        runs=3, count=5)
    login_event = proxy_event("POST", "/api/v1/login", None,
                              json.dumps({"username": "slow", "password": "bench password 2"}))
    figures["login_cost_12"] = series(
        lambda: application.app(login_event, Context()), runs=3, count=5)
    figures["revoke_all"] = {str(n): revoke_all(application, floor, names, n) for n in
                             (10, 100, 1000)}
    figures["events"] = event_figures(application, floor, names)
    figures["forgot"] = forgot_figures(application)
    return figures


def forgot_figures(application):
    """POST /password/forgot for a verified account's address, an
    unverified one's and nobody's, in turn request by request: the answer
    must not tell them apart by its time (the mail is decided and sent off
    the request path, so the three make the same one write)."""
    from chalicelib import service

    service.admin.verify_email("bench")  # bench@example.com verified; slow@ not
    calls = {}
    for name, address in (("known", "bench@example.com"), ("unverified", "slow@example.com"),
                          ("unknown", "nobody@example.com")):
        event = proxy_event("POST", "/api/v1/password/forgot", None,
                            json.dumps({"email": address}))

        def call(event=event):
            assert application.app(event, Context())["statusCode"] == 202
        calls[name] = call
    for call in calls.values():
        timed(call, 50)
    figures = paired(calls, count=300)
    for name in ("known", "unverified"):
        figures[name]["ratio_to_unknown"] = round(
            figures[name]["median_ms"] / figures["unknown"]["median_ms"], 3)
    return figures


@contextlib.contextmanager
def without_events():
    """The same handlers, with no event written: every transaction loses its
    writes to the events table and the check that guards them (a login's
    own condition stays: it was there before the log)."""
    from chalicelib import unit_of_work

    add, spill, table = unit_of_work.Transaction.add, unit_of_work.Transaction.add_spillable, \
        os.environ["EVENTS_TABLE"]

    def kept(writes):
        return [w for w in writes if w.table != table and w.kind != "ConditionCheck"]

    unit_of_work.Transaction.add = lambda self, *writes: add(self, *kept(writes))
    unit_of_work.Transaction.add_spillable = lambda self, *writes: spill(self, *kept(writes))
    try:
        yield
    finally:
        unit_of_work.Transaction.add, unit_of_work.Transaction.add_spillable = add, spill


def each(prepare, call, count):
    """Median and p95 of ``call(prepare())``, timing the call alone."""
    samples = []
    for _ in range(count):
        argument = prepare()
        started = time.perf_counter()
        call(argument)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def with_and_without(prepare, call, tidy, runs=5, count=40):
    """The request with its events and without them, in alternating runs,
    each on tables that ``tidy`` brought back to a few items: moto copies
    every table a transaction touches, so a transaction gets slower as the
    tables grow (DynamoDB's do not), and a slow one can time out and be
    retried, which moto (ignoring the idempotency token) applies twice.
    Returns both figures and the ratio of their medians."""
    found = {"with": [], "without": []}
    for _ in range(runs):
        tidy()
        found["with"].append(each(prepare, call, count))
        tidy()
        with without_events():
            found["without"].append(each(prepare, call, count))
    figures = {}
    for kind, results in found.items():
        medians = [m for m, _ in results]
        figures[kind] = {"median_ms": round(statistics.median(medians), 3),
                         "p95_ms": round(statistics.median(p for _, p in results), 3),
                         "spread_ms": [round(min(medians), 3), round(max(medians), 3)],
                         "runs": runs, "requests_per_run": count}
    figures["ratio"] = round(figures["with"]["median_ms"] / figures["without"]["median_ms"], 3)
    return figures


def event_figures(application, floor, names):
    """Login, failed login and the revocation of one token, with and without
    their event writes, at bcrypt cost 4 (so that DynamoDB, not bcrypt,
    is what the figures show)."""
    from chalicelib import clock, ids, login_store, service, stores

    os.environ["BCRYPT_ROUNDS"] = "4"
    try:
        service.account.signup("eventer", "eventer@example.com", "bench password 4")
        attempts = login_store.name("eventer").attempts_key
        right = proxy_event("POST", "/api/v1/login", None, json.dumps(
            {"username": "eventer", "password": "bench password 4"}))
        wrong = proxy_event("POST", "/api/v1/login", None, json.dumps(
            {"username": "eventer", "password": "wrong password"}))

        def answered(event, status):
            def call(_):
                assert application.app(event, Context())["statusCode"] == status
            return call

        def unlocked():
            floor.delete_item(TableName=names["users"], Key=attempts)

        login = service.login.with_password("eventer", "bench password 4", "bench", "192.0.2.10")
        ctx = application.authorizer.decide("Bearer " + login["token"])

        def spare_token():
            token_id = ids.new_timed_id(clock.now())
            floor.put_item(TableName=names["tokens"], Item={
                "user_id": {"S": ctx["user_id"]}, "token_id": {"S": token_id},
                "expires_at": {"N": str(int(clock.now()) + 3600)}})
            return token_id

        def revoke(token_id):
            event = proxy_event("DELETE", "/api/v1/tokens/{token_id}", ctx)
            event["path"] = f"/api/v1/tokens/{token_id}"
            event["pathParameters"] = {"token_id": token_id}
            answer = application.app(event, Context())
            assert answer["statusCode"] == 200, answer

        def delete_floor(token_id):
            floor.delete_item(TableName=names["tokens"],
                              Key={"user_id": {"S": ctx["user_id"]}, "token_id": {"S": token_id}})

        def tidy():
            """Every token and event gone but the caller's token."""
            for kind, key in (("tokens", "token_id"), ("events", "event_id")):
                items = floor.scan(TableName=names[kind], ProjectionExpression=f"user_id, {key}",
                                   ConsistentRead=True)["Items"]
                doomed = [i for i in items if i[key]["S"] != ctx["token_id"]]
                for start in range(0, len(doomed), 25):
                    floor.batch_write_item(RequestItems={names[kind]: [
                        {"DeleteRequest": {"Key": k}} for k in doomed[start:start + 25]]})

        figures = {
            "login": with_and_without(lambda: None, answered(right, 200), tidy),
            "failed_login": with_and_without(unlocked, answered(wrong, 401), tidy),
            "revoke": with_and_without(spare_token, revoke, tidy),
        }
        floor_median, floor_p95 = each(spare_token, delete_floor, 200)
        figures["revoke"]["floor_delete_item"] = {"median_ms": round(floor_median, 3),
                                                  "p95_ms": round(floor_p95, 3)}
        figures["revoke"]["ratio_to_delete_item"] = round(
            figures["revoke"]["with"]["median_ms"] / floor_median, 3)
        return figures
    finally:
        os.environ["BCRYPT_ROUNDS"] = "12"


def revoke_all(application, floor, names, n):
    """DELETE /api/v1/tokens of a user holding ``n`` tokens (made directly)."""
    from chalicelib import clock, ids, service

    samples = []
    for _ in range(3 if n < 1000 else 2):
        name = f"revoker{uuid.uuid4().hex[:12]}"
        os.environ["BCRYPT_ROUNDS"] = "4"
        service.account.signup(name, f"{name}@example.com", "bench password 3")
        login = service.login.with_password(name, "bench password 3", "bench", "192.0.2.10")
        os.environ["BCRYPT_ROUNDS"] = "12"
        ctx = application.authorizer.decide("Bearer " + login["token"])
        now = clock.now()
        items = [{"PutRequest": {"Item": {
            "user_id": {"S": ctx["user_id"]},
            "token_id": {"S": ids.new_timed_id(now + i / 1e5)},
            "expires_at": {"N": str(int(now) + 3600)}}}} for i in range(n - 1)]
        for start in range(0, len(items), 25):
            floor.batch_write_item(RequestItems={names["tokens"]: items[start:start + 25]})
        event = proxy_event("DELETE", "/api/v1/tokens", ctx)
        started = time.perf_counter()
        answer = application.app(event, Context())
        samples.append((time.perf_counter() - started) * 1000)
        assert json.loads(answer["body"])["revoked"] == n, answer
    return {"median_ms": round(statistics.median(samples), 1),
            "per_token_ms": round(statistics.median(samples) / n, 3), "runs": len(samples)}


def lambda_runtime(runtime):
    """A folder with only what the Lambda Python runtime provides besides
    the standard library: boto3 and its dependencies."""
    os.makedirs(runtime)
    import boto3

    site = os.path.dirname(os.path.dirname(boto3.__file__))
    for name in ("boto3", "botocore", "jmespath", "s3transfer", "dateutil", "six.py",
                 "urllib3"):
        os.symlink(os.path.join(site, name), os.path.join(runtime, name))
    return runtime


def lambda_like_dirs(tmp):
    """The deployment zip unpacked (with and without its bytecode), and a
    runtime folder (:func:`lambda_runtime`)."""
    task, bare, runtime = (os.path.join(tmp, d) for d in ("task", "bare", "runtime"))
    with zipfile.ZipFile(ZIP) as z:
        z.extractall(task)
        z.extractall(bare, [n for n in z.namelist() if "__pycache__" not in n])
    return task, bare, lambda_runtime(runtime)


# What a second-factor route loads on top of app: the use cases and the
# packages of TOTP, its QR code and passkeys (cryptography with them).
SECOND_FACTORS = ("from chalicelib.service import factors; import pyotp, segno, fido2.server, "
                  "fido2.webauthn")


def cold(path, runs=15):
    """Fresh interpreters that see only ``path`` (no site-packages) and cannot
    write bytecode, as in Lambda: each times ``import boto3`` (as
    chalicelib/aws.py imports it), then ``import app`` on top of it, then
    what a second-factor route loads on top of that. Timing them in one
    process keeps the machine's noise out of their differences."""
    env = dict(os.environ, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")
    program = ("import time; from chalicelib import cold_start; t = time.perf_counter()\n"
               "with cold_start.without_cryptography(): import boto3\n"
               "b = time.perf_counter(); import app; a = time.perf_counter()\n"
               f"{SECOND_FACTORS}; f = time.perf_counter()\n"
               "print((b - t) * 1000, (a - b) * 1000, (f - a) * 1000)")
    # -P: not the current folder first on the path (it would be this
    # repository's, whose own app.py and chalicelib would be measured).
    triples = [tuple(map(float, subprocess.run(
        [sys.executable, "-S", "-P", "-c", program], env=env, capture_output=True, text=True,
        check=True).stdout.split())) for _ in range(runs)]

    def summary(values):
        values = sorted(values)
        return {"median_ms": round(statistics.median(values), 1),
                "spread_ms": [round(values[0], 1), round(values[-1], 1)], "runs": runs}
    return (summary(b for b, _, _ in triples), summary(a for _, a, _ in triples),
            summary(b + a for b, a, _ in triples), summary(f for _, _, f in triples))


def second_factor_bytes(zip_path):
    """The zip's bytes (compressed, bytecode included) of the packages that
    only the second factors need: the closure of pyotp, fido2 and segno
    less that of the other requirements, each file found by its installed
    RECORD."""
    import importlib.metadata

    from deploy import wheels

    lines = wheels.requirements(os.path.join(ROOT, "requirements.txt"))
    factors = [line for line in lines if line.split("=")[0] in ("pyotp", "fido2", "segno")]
    only = set(wheels.closure(factors)) - set(wheels.closure(
        [line for line in lines if line not in factors]))
    owned = set()
    for name in only:
        for file in importlib.metadata.files(name) or ():
            path = str(file)
            owned.add(path)
            if path.endswith(".py"):
                folder, module = os.path.split(path[:-3])
                owned.add(f"{folder}/__pycache__/{module}.cpython-311.pyc".lstrip("/"))
    with zipfile.ZipFile(zip_path) as z:
        return sorted(only), sum(i.compress_size for i in z.infolist() if i.filename in owned)


def package_figures():
    with tempfile.TemporaryDirectory() as tmp:
        task, bare, runtime = lambda_like_dirs(tmp)
        boto3_alone, app_on_top, app_total, factors_on_top = cold(f"{task}:{runtime}")
        _, app_on_top_bare, _, _ = cold(f"{bare}:{runtime}")
        figures = {
            "import_boto3": boto3_alone,
            "import_app": app_total,
            "import_app_over_boto3": app_on_top,
            "import_app_over_boto3_without_shipped_bytecode": app_on_top_bare,
            "import_second_factors_over_app": factors_on_top,
        }
        rss = subprocess.run([sys.executable, __file__, "--rss"], capture_output=True,
                             text=True, check=True, env=os.environ).stdout
        figures["peak_rss_mb"] = float(rss.split()[-1])
    figures["deployment_zip_bytes"] = os.path.getsize(ZIP)
    packages, grown = second_factor_bytes(ZIP)
    figures["second_factor_packages"] = {"names": packages, "zip_bytes": grown}
    return figures


def peak_rss():
    """Peak RSS of a process that serves requests like the API handler."""
    request_figures_light()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def request_figures_light():
    import app as application
    from chalicelib import aws, service
    from deploy import tables

    quiet()
    aws.reset()
    os.environ.update({"USERS_TABLE": "rss-users", "TOKENS_TABLE": "rss-tokens",
                       "EVENTS_TABLE": "rss-events", "BCRYPT_ROUNDS": "4"})
    tables.create_tables(aws.dynamodb(), {"users": "rss-users", "tokens": "rss-tokens",
                                          "events": "rss-events"})
    service.account.signup("rss", "rss@example.com", "rss password 1")
    login = service.login.with_password("rss", "rss password 1", None, None)
    ctx = application.authorizer.decide("Bearer " + login["token"])
    for path in ("/api/v1/users/me", "/api/v1/tokens"):
        for _ in range(200):
            application.app(proxy_event("GET", path, ctx), Context())

GROWTH_EVENTS = 50000


def serve_embedded(port, spec):
    """The child process of :func:`growth_figures`: the embedded DynamoDB,
    its tables made and seeded straight into its backend (seconds, where
    50,000 items through the API would take minutes), then serving."""
    import logging
    import threading

    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
    from moto.dynamodb.models.table import Table

    from deploy import tables
    from devserver import partitions, transactions
    from devserver.embedded_dynamodb import EmbeddedDynamoDB

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request
    moto_transaction, moto_query = DynamoDBBackend.transact_write_items, Table.query
    if spec["moto"]:
        partitions.partition_query = lambda query: moto_query
    embedded = EmbeddedDynamoDB("127.0.0.1", port).start()
    if spec["moto"]:
        transactions.transact_write_items = moto_transaction
    client = boto3.client("dynamodb", endpoint_url=embedded.endpoint, region_name="us-east-1")
    for names in spec["tables"]:
        tables.create_tables(client, names)
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    expires_at = {"N": str(int(time.time()) + 90 * 86400)}
    with embedded.lock:
        for i in range(spec["events"]):
            backend.put_item(spec["seed"], {
                "user_id": {"S": f"seeded{i % 1000:04d}"}, "event_id": {"S": f"{i:024x}"},
                "type": {"S": "login"}, "by": {"S": "user"}, "ip": {"S": "192.0.2.20"},
                "expires_at": expires_at})
    print("ready", flush=True)
    threading.Event().wait()


def load():
    with open("/proc/loadavg", encoding="utf-8") as f:
        return " ".join(f.read().split()[:3])


def growth_figures(moto=False, runs=RUNS, count=40):
    """A login at bcrypt cost 4, the bare 2-item transaction of a put into
    the users and the events tables, and a Query of the user's events,
    against empty tables and against tables with GROWTH_EVENTS events (of
    other users), in turn request by request, on one embedded DynamoDB.
    ``moto``: with moto's own transactions and queries, as before."""
    import boto3
    from botocore.config import Config

    import app as application
    from chalicelib import aws, service
    from servers import free_port

    sets = {size: {kind: f"growth-{size}-{kind}" for kind in ("users", "tokens", "events",
                                                              "mail")}
            for size in ("empty", "full")}
    port = free_port()
    spec = {"tables": list(sets.values()), "seed": sets["full"]["events"],
            "events": GROWTH_EVENTS, "moto": moto}
    child = subprocess.Popen([sys.executable, __file__, "--embedded-dynamodb", str(port),
                              json.dumps(spec)], stdout=subprocess.PIPE, text=True,
                             env=os.environ)
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL_DYNAMODB", "BCRYPT_ROUNDS",
                                             "USERS_TABLE", "TOKENS_TABLE", "EVENTS_TABLE",
                                             "MAIL_TABLE")}
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the embedded DynamoDB did not start")
        os.environ.update({"AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{port}",
                           "BCRYPT_ROUNDS": "4"})
        quiet()
        aws.reset()
        # The floor's own client, waiting as long as moto's transactions take.
        client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}",
                              region_name="us-east-1",
                              config=Config(read_timeout=300, retries={"max_attempts": 1}))
        held = client.describe_table(TableName=sets["full"]["events"])["Table"]["ItemCount"]
        assert held == GROWTH_EVENTS, held

        def use(names):
            os.environ.update({"USERS_TABLE": names["users"], "TOKENS_TABLE": names["tokens"],
                               "EVENTS_TABLE": names["events"], "MAIL_TABLE": names["mail"]})

        for names in sets.values():
            use(names)
            service.account.signup("grower", "grower@example.com", "bench password 5")
        event = proxy_event("POST", "/api/v1/login", None, json.dumps(
            {"username": "grower", "password": "bench password 5"}))

        statuses = {size: [] for size in sets}

        def login(names):
            def call():
                use(names)
                answer = application.app(event, Context())
                statuses[next(k for k, v in sets.items() if v is names)].append(
                    answer["statusCode"])
                # moto's own transactions take longer at 50,000 events than
                # the service's 2 s read timeout: there a login may answer
                # 503 after three attempts, which the figures count.
                assert moto or answer["statusCode"] == 200, answer
            return call

        def transaction(names):
            def call():
                client.transact_write_items(TransactItems=[
                    {"Put": {"TableName": names["users"], "Item": {"pk": {"S": uuid.uuid4().hex}}}},
                    {"Put": {"TableName": names["events"], "Item": {
                        "user_id": {"S": "grower"}, "event_id": {"S": uuid.uuid4().hex}},
                        "ConditionExpression": "attribute_not_exists(event_id)"}}])
            return call

        def query(names):
            def call():
                client.query(TableName=names["events"], KeyConditionExpression="user_id = :u",
                             ExpressionAttributeValues={":u": {"S": "grower"}})
            return call

        kinds = {"login": login, "transaction": transaction, "query": query}
        groups = [{f"{kind}_{size}": measure(names) for size, names in sets.items()}
                  for kind, measure in kinds.items()]
        for group in groups:
            for call in group.values():
                timed(call, 3)  # warm connections and caches
        for found in statuses.values():
            found.clear()
        load_before, figures = load(), {}
        for group in groups:
            figures.update(paired(group, runs=runs, count=count))
        figures.update({"events": GROWTH_EVENTS, "moto": moto,
                        "loadavg": [load_before, load()],
                        "login_not_200": {size: len([s for s in found if s != 200])
                                          for size, found in statuses.items()}})
        for kind in kinds:
            figures[kind + "_ratio"] = round(
                figures[kind + "_full"]["median_ms"] / figures[kind + "_empty"]["median_ms"], 3)
        return figures
    finally:
        child.terminate()
        child.wait()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        aws.reset()


def report_growth(f):
    label = "moto's own transactions and queries" if f["moto"] else "make run"
    print(f"embedded DynamoDB ({label}), {f['events']:,} events vs none; "
          f"load average {f['loadavg'][0]} before, {f['loadavg'][1]} after")
    print(f"{'request':48} {'median ms':>10} {'p95 ms':>9} {'mean ms':>9} {'spread ms':>17} "
          f"{'ratio':>6}")
    for kind, name in (("login", "POST /api/v1/login, cost 4"),
                       ("transaction", "TransactWriteItems, 2 puts"),
                       ("query", "Query of the user's events")):
        for size, words in (("empty", "empty tables"), ("full", f"{f['events']:,} events")):
            g = f[f"{kind}_{size}"]
            spread = f"{g['spread_ms'][0]}-{g['spread_ms'][1]}"
            ratio = f[kind + "_ratio"] if size == "full" else ""
            print(f"{name + ', ' + words:48} {g['median_ms']:>10} {g['p95_ms']:>9} "
                  f"{g['mean_ms']:>9} {spread:>17} {ratio:>6}")
    print(f"logins not answered 200: {f['login_not_200']['empty']} against empty tables, "
          f"{f['login_not_200']['full']} against {f['events']:,} events")


TARGETS = [
    ("authorizer overhead", lambda f: f["authorizer"]["ratio_to_floor"], 1.15, "x floor"),
    ("authorizer overhead, mean", lambda f: f["authorizer"]["mean_ratio_to_floor"], 1.15,
     "x floor"),
    ("GET /users/me overhead", lambda f: f["users_me"]["ratio_to_floor"], 1.15, "x floor"),
    ("import app over import boto3", lambda f: f["import_app_over_boto3"]["median_ms"], 30, "ms"),
    ("deployment zip", lambda f: f["deployment_zip_bytes"] / 2 ** 20, ZIP_BOUND / 2 ** 20,
     "MiB"),
    ("peak RSS", lambda f: f["peak_rss_mb"], 128, "MB"),
    ("login with 50,000 events over empty", lambda f: f["embedded_growth"]["login_ratio"], 1.2,
     "x"),
    ("forgot: known over unknown address", lambda f: f["forgot"]["known"]["ratio_to_unknown"],
     1.1, "x"),
    ("forgot: unverified over unknown", lambda f: f["forgot"]["unverified"]["ratio_to_unknown"],
     1.1, "x"),
]


def report(figures):
    rows = [
        ("authorizer (a request a second)", figures["authorizer"]),
        ("  floor: one GetItem", figures["authorizer_floor"]),
        ("  its own read: one BatchGetItem", figures["authorizer_batch_floor"]),
        ("authorizer (every use writes)", figures["authorizer_every_use_writes"]),
        ("  floor: GetItem + UpdateItem", figures["authorizer_every_use_writes_floor"]),
        ("GET /api/v1/users/me (handler)", figures["users_me"]),
        ("  floor: one GetItem", figures["users_me_floor"]),
        ("POST /api/v1/introspect (handler)", figures["introspection"]),
        ("  floor: one BatchGetItem, 3 items", figures["introspection_floor"]),
        ("bcrypt check, cost 12", figures["bcrypt_cost_12"]),
        ("POST /api/v1/login, cost 12", figures["login_cost_12"]),
    ]
    print(f"{'request':34} {'median ms':>10} {'p95 ms':>9} {'mean ms':>9} {'spread ms':>17} "
          f"{'ratio':>6} {'writes':>6}")
    for name, f in rows:
        spread = f"{f['spread_ms'][0]}-{f['spread_ms'][1]}"
        print(f"{name:34} {f['median_ms']:>10} {f['p95_ms']:>9} {f['mean_ms']:>9} {spread:>17} "
              f"{f.get('ratio_to_floor', ''):>6} {f.get('writes', ''):>6}")
    for n, f in figures["revoke_all"].items():
        print(f"{'DELETE /api/v1/tokens, N = ' + n:34} {f['median_ms']:>10}"
              f"   ({f['per_token_ms']} ms a token)")
    for name, label in (("login", "POST /api/v1/login, cost 4"),
                        ("failed_login", "failed login, cost 4"),
                        ("revoke", "DELETE /api/v1/tokens/{id}")):
        f = figures["events"][name]
        for kind in ("with", "without"):
            g = f[kind]
            spread = f"{g['spread_ms'][0]}-{g['spread_ms'][1]}"
            print(f"{label + (' + event' if kind == 'with' else ', no event'):34} "
                  f"{g['median_ms']:>10} {g['p95_ms']:>9} {spread:>17} "
                  f"{f['ratio'] if kind == 'with' else '':>6}")
    for name in ("known", "unverified", "unknown"):
        f = figures["forgot"][name]
        spread = f"{f['spread_ms'][0]}-{f['spread_ms'][1]}"
        print(f"{'POST /password/forgot, ' + name:34} {f['median_ms']:>10} {f['p95_ms']:>9} "
              f"{f['mean_ms']:>9} {spread:>17} {f.get('ratio_to_unknown', ''):>6}")
    f = figures["events"]["revoke"]
    print(f"{'  floor: one DeleteItem':34} {f['floor_delete_item']['median_ms']:>10} "
          f"{f['floor_delete_item']['p95_ms']:>9} {'':>17} {f['ratio_to_delete_item']:>6}")
    for name, label in (("import_boto3", "cold import boto3"),
                        ("import_app", "cold import app (boto3 included)"),
                        ("import_app_over_boto3", "  of which app over boto3"),
                        ("import_app_over_boto3_without_shipped_bytecode",
                         "  same, without shipped bytecode"),
                        ("import_second_factors_over_app", "  second factors over app")):
        f = figures[name]
        print(f"{label:34} {f['median_ms']:>10} {'':>9} "
              f"{str(f['spread_ms'][0]) + '-' + str(f['spread_ms'][1]):>17}")
    report_growth(figures["embedded_growth"])
    print(f"{'peak RSS':34} {figures['peak_rss_mb']:>10.1f} MB")
    print(f"{'deployment zip':34} {figures['deployment_zip_bytes']:>10} bytes")
    grown = figures["second_factor_packages"]
    print(f"{'  grown by the second factors':34} {grown['zip_bytes']:>10} bytes "
          f"({', '.join(grown['names'])})")
    print()
    for name, value, limit, unit in TARGETS:
        got = value(figures)
        print(f"target {name}: {got:.3f} {unit} (at most {limit}): "
              f"{'met' if got <= limit else 'NOT MET'}")


def main():
    if "--rss" in sys.argv:
        print(round(peak_rss(), 1))
        return
    if "--embedded-dynamodb" in sys.argv:
        at = sys.argv.index("--embedded-dynamodb")
        serve_embedded(int(sys.argv[at + 1]), json.loads(sys.argv[at + 2]))
        return
    if "--growth" in sys.argv:
        environment("http://127.0.0.1:1")  # every other setting; growth_figures sets the endpoint
        count = int(sys.argv[sys.argv.index("--count") + 1]) if "--count" in sys.argv else 40
        figures = growth_figures(moto="--moto" in sys.argv, count=count)
        report_growth(figures)
        return
    # Imported here, not at the top: the --rss process above measures what
    # serving requests costs, not the servers' own modules.
    from servers import FakeAWS

    # In a process of its own: a server thread here would take interpreter
    # time from the requests being measured.
    with FakeAWS(own_process=True) as dynamodb:
        environment(dynamodb.endpoint)
        figures = request_figures()
        figures.update(package_figures())
    figures["embedded_growth"] = growth_figures()
    figures["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    os.makedirs(BUILD, exist_ok=True)
    with open(os.path.join(BUILD, "bench.json"), "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2)
    report(figures)


if __name__ == "__main__":
    main()
