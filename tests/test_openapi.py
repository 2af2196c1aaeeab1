"""The OpenAPI document: complete, and true to the app."""
from openapi_spec_validator import validate

from app import app


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


def test_every_contract_error_status_is_documented(api):
    paths = document(api)["paths"]
    assert {"400", "409", "422"} <= set(paths["/api/v1/signup"]["post"]["responses"])
    assert {"401", "429"} <= set(paths["/api/v1/login"]["post"]["responses"])
    assert {"403", "429"} <= set(paths["/api/v1/users/me/password"]["post"]["responses"])
    assert {"403", "429"} <= set(paths["/api/v1/users/me"]["delete"]["responses"])
    assert {"403", "404"} <= set(paths["/api/v1/admin/users/{username}/tokens"]["get"]["responses"])
