"""The OpenAPI document: complete, true to the app, and good enough to
generate a typed client from (tests/e2e/test_make_run.py generates one)."""
import subprocess
import sys

from openapi_spec_validator import validate

from app import app
from conftest import ROOT


def document(api):
    reply = api.call("GET", "/api/v1/openapi.json")
    assert reply.status == 200
    return reply.json


def test_it_lists_exactly_the_routes_the_app_has(api):
    documented = {(path, method.upper()) for path, ops in document(api)["paths"].items()
                  for method in ops}
    routed = {(path, method) for path, methods in app.routes.items() for method in methods
              if method != "OPTIONS"}
    assert documented == routed


def test_operation_ids_are_the_view_names(api):
    ids = {op["operationId"] for ops in document(api)["paths"].values() for op in ops.values()}
    views = {entry.view_name for methods in app.routes.values() for entry in methods.values()}
    assert ids == views


def test_it_is_a_valid_openapi_3_document(api):
    validate(document(api))


def test_token_routes_declare_the_bearer_scheme(api):
    doc = document(api)
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert doc["paths"]["/api/v1/tokens"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/api/v1/login"]["post"]


def test_request_bodies_come_from_the_schemas_and_hide_nothing_secret_in_outputs(api):
    schemas = document(api)["components"]["schemas"]
    signup = schemas["SignupIn"]
    assert set(signup["required"]) == {"username", "email", "password"}
    assert signup["properties"]["password"]["minLength"] == 8
    assert "password" not in schemas["UserOut"]["properties"]
    assert set(schemas["TokenOut"]["properties"]) == {
        "id", "description", "ip", "created_at", "expires_at", "last_used_at", "current"}


def test_the_event_object_is_documented_with_its_types_and_actors(api):
    from chalicelib.terms import EVENT_ACTORS as BY, EVENT_TYPES as TYPES

    event = document(api)["components"]["schemas"]["EventOut"]
    assert set(event["properties"]) == {"id", "type", "created_at", "ip", "device", "by",
                                        "token_id", "method"}
    assert event["properties"]["type"]["enum"] == list(TYPES) and len(TYPES) == 22
    assert event["properties"]["by"]["enum"] == ["self", "admin", "operator", "system",
                                                 "unknown"] == list(BY)


def test_every_contract_error_status_is_documented(api):
    paths = document(api)["paths"]
    assert {"400", "409", "422"} <= set(paths["/api/v1/signup"]["post"]["responses"])
    assert {"401", "429"} <= set(paths["/api/v1/login"]["post"]["responses"])
    assert {"403", "429"} <= set(paths["/api/v1/users/me/password"]["post"]["responses"])
    assert {"403", "429"} <= set(paths["/api/v1/users/me"]["delete"]["responses"])
    assert {"403", "404"} <= set(paths["/api/v1/admin/users/{username}/tokens"]["get"]["responses"])


def operations(doc):
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_operations_come_from_the_route_table_and_the_views(api):
    """The summary is the view's docstring; a token is needed exactly where
    the route names the authorizer, client credentials exactly where the
    view declares it checks them; the path parameters are the route's."""
    doc = document(api)
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            if method == "OPTIONS":
                continue
            op = doc["paths"][path][method.lower()]
            assert op["summary"] == entry.view_function.__doc__.strip().split("\n")[0]
            assert (op.get("security") == [{"bearer": []}]) == (entry.authorizer is not None), \
                (path, method)
            assert (op.get("security") == [{"client": []}]) == (
                entry.view_function.contract.credentials == "client"), (path, method)
            assert [p["name"] for p in op["parameters"] if p["in"] == "path"] == entry.view_args


def test_every_error_status_has_the_one_error_schema(api):
    doc = document(api)
    error = doc["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "message", "fields", "error_description",
                                        "mfa_token", "methods"}
    assert set(error["required"]) == {"error", "message"}
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


def test_every_output_field_is_required_and_nullable_exactly_where_null_is_possible(api):
    schemas = document(api)["components"]["schemas"]
    nullable = {("TokenOut", "description"), ("TokenOut", "ip"), ("TokenOut", "last_used_at"),
                ("TokenPageOut", "next_cursor"), ("EventOut", "ip"), ("EventOut", "device"),
                ("EventOut", "token_id"), ("EventOut", "method"), ("EventPageOut", "next_cursor"),
                ("PasskeyOut", "last_used_at")}
    outputs = [name for name in schemas if name.endswith("Out")]
    assert {"UserOut", "TokenOut", "TokenPageOut", "LoginOut", "RevokedOut", "DeletedOut",
            "ServiceOut", "EventOut", "EventPageOut"} <= set(outputs)
    for name in outputs:
        properties = schemas[name]["properties"]
        assert set(schemas[name]["required"]) == set(properties), name
        for field, prop in properties.items():
            assert prop.get("nullable", False) == ((name, field) in nullable), (name, field)


def test_times_are_date_times(api):
    schemas = document(api)["components"]["schemas"]
    times = {(name, field) for name, schema in schemas.items()
             for field, prop in schema.get("properties", {}).items()
             if prop.get("format") == "date-time"}
    assert times == {("UserOut", "created_at"), ("TokenOut", "created_at"),
                     ("TokenOut", "expires_at"), ("TokenOut", "last_used_at"),
                     ("LoginOut", "expires_at"), ("EventOut", "created_at"),
                     ("PasskeyOut", "created_at"), ("PasskeyOut", "last_used_at")}


def header_names(response):
    return {name for name in response.get("headers", {})}


def test_token_routes_document_api_gateways_own_answers_with_their_headers(api):
    from deploy import gateway_responses

    doc = document(api)
    token_routes = [(p, m, op) for p, m, op in operations(doc)
                    if op.get("security") == [{"bearer": []}]]
    assert len(token_routes) == 21
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED", "AUTHORIZER_FAILURE"):
        status, headers, _ = gateway_responses.http(kind)
        declared = set(headers) - set(gateway_responses.CORS) - {"Content-Type"}
        for path, method, op in token_routes:
            assert declared <= header_names(op["responses"][str(status)]), (kind, path, method)
    not_found, _, _ = gateway_responses.http("MISSING_AUTHENTICATION_TOKEN")
    assert str(not_found) in doc["paths"]["/api/v1/tokens/{token_id}"]["delete"]["responses"]


def test_the_app_declares_retry_after_wherever_it_sends_it(api):
    doc = document(api)
    retried = [(p, m, s, r) for p, m, op in operations(doc) for s, r in op["responses"].items()
               if s in ("429", "503")]
    assert {(p, m, s) for p, m, s, _ in retried} >= {
        ("/api/v1/login", "post", "429"), ("/api/v1/login", "post", "503"),
        ("/api/v1/users/me/password", "post", "429"), ("/api/v1/users/me", "delete", "429")}
    assert all("Retry-After" in header_names(r) for *_, r in retried)
    assert doc["components"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}


def test_every_api_answer_declares_no_store_and_only_those(api):
    doc = document(api)
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            assert ("Cache-Control" in header_names(response)) == path.startswith("/api/v1"), \
                (path, method, status)
    assert doc["components"]["headers"]["Cache-Control"]["schema"]["enum"] == ["no-store"]


def test_every_answer_declares_nosniff(api):
    doc = document(api)
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            assert "X-Content-Type-Options" in header_names(response), (path, method, status)
    assert doc["components"]["headers"]["X-Content-Type-Options"]["schema"]["enum"] == ["nosniff"]


def test_operations_are_tagged_by_path(api):
    tags = {(p, m): op["tags"] for p, m, op in operations(document(api))}
    assert tags[("/", "get")] == tags[("/api/v1/openapi.json", "get")] == ["service"]
    assert tags[("/api/v1/login", "post")] == tags[("/api/v1/logout", "post")] == ["auth"]
    assert tags[("/api/v1/users/me/password", "post")] == ["users"]
    assert tags[("/api/v1/tokens/{token_id}", "delete")] == ["tokens"]
    assert tags[("/api/v1/admin/users/{username}/tokens", "get")] == ["admin"]
    assert {t["name"] for t in document(api)["tags"]} == {t[0] for t in tags.values()}


def test_servers_name_make_run_and_a_deployed_stage(api):
    local, deployed = document(api)["servers"]
    assert local["url"] == "http://127.0.0.1:8000"
    assert deployed["url"] == "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"
    assert deployed["variables"]["stage"]["default"] == "prod"


def test_the_authorizers_cold_start_loads_no_schema_machinery():
    """app.py imported afresh, as Lambda imports it for the authorizer: the
    declarations name their schemas, they do not load them."""
    probe = ("import sys, app; print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('marshmallow', 'apispec') or m in ('chalicelib.schemas', 'chalicelib.openapi')))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_introspection_declares_client_credentials_and_both_body_types(api):
    doc = document(api)
    assert doc["components"]["securitySchemes"]["client"]["scheme"] == "basic"
    op = doc["paths"]["/api/v1/introspect"]["post"]
    assert op["security"] == [{"client": []}]
    # RFC 7662's form; JSON is accepted too, but a generated client cannot
    # type-check a body of two media types (see openapi._body).
    assert set(op["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert doc["paths"]["/api/v1/login"]["post"]["requestBody"]["content"].keys() == {
        "application/json"}
    challenge = op["responses"]["401"]["headers"]["WWW-Authenticate"]["$ref"]
    assert doc["components"]["headers"][challenge.rsplit("/", 1)[1]]["schema"]["pattern"] == \
        "^Basic realm="
    assert {"400", "401", "413", "422", "503"} <= set(op["responses"])
    for status in ("400", "401"):
        assert "`error_description`" in op["responses"][status]["description"]
    assert "error_description" not in doc["paths"]["/api/v1/login"]["post"]["responses"]["401"][
        "description"]
    body = doc["components"]["schemas"]["IntrospectIn"]["properties"]
    assert {"client_id", "client_secret"} <= set(body)
    assert doc["components"]["schemas"]["Introspection"]["required"] == ["active"]
