"""The house reads top-down: routes -> service -> stores -> DynamoDB, and no
layer reaches past the next one. Checked on the source, import by import."""
import ast
import os

import pytest

from conftest import ROOT


def imported(source):
    """Every module ``source`` imports, at the top or inside a function; for
    ``from chalicelib import x`` both ``chalicelib`` and ``chalicelib.x``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def touches(source, modules):
    found = imported(source)
    return sorted(m for m in modules
                  if any(n == m or n.startswith(m + ".") for n in found))


def source_of(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("path,forbidden", [
    # Views parse, call the service and shape: no storage, no AWS.
    ("app.py", ["chalicelib.dynamo", "chalicelib.aws", "chalicelib.stores",
                "chalicelib.user_store", "chalicelib.token_store", "chalicelib.event_store",
                "boto3", "botocore"]),
    # The service speaks in domain terms: stores and their unit of work.
    ("chalicelib/service.py", ["chalicelib.dynamo", "chalicelib.aws", "boto3", "botocore"]),
    # The edge and the authorizer need a store or an identity, not the use cases.
    ("chalicelib/web.py", ["chalicelib.service", "chalicelib.dynamo", "chalicelib.event_store"]),
    ("chalicelib/authorizer.py", ["chalicelib.service", "chalicelib.dynamo"]),
    # Domain errors carry no HTTP: only web.py maps them.
    ("chalicelib/errors.py", ["chalice", "chalicelib.web"]),
    # The stores reach DynamoDB through dynamo.py's calls only.
    ("chalicelib/user_store.py", ["chalicelib.aws", "boto3", "botocore", "chalicelib.service"]),
    ("chalicelib/token_store.py", ["chalicelib.aws", "boto3", "botocore", "chalicelib.service"]),
    ("chalicelib/event_store.py", ["chalicelib.aws", "boto3", "botocore", "chalicelib.service"]),
    ("chalicelib/client_store.py", ["chalicelib.aws", "boto3", "botocore", "chalicelib.service"]),
    # Introspection and its clients are use cases too: stores, never DynamoDB.
    ("chalicelib/introspection.py", ["chalicelib.dynamo", "chalicelib.aws", "boto3", "botocore"]),
    ("chalicelib/clients.py", ["chalicelib.dynamo", "chalicelib.aws", "boto3", "botocore"]),
])
def test_no_layer_reaches_past_the_next(path, forbidden):
    assert touches(source_of(path), forbidden) == []


@pytest.mark.parametrize("line", ["import boto3.session", "from chalicelib import dynamo",
                                  "from chalicelib.dynamo import S", "def f():\n    import boto3"])
def test_the_check_sees_every_form_of_import(line):
    assert touches(line, ["boto3", "chalicelib.dynamo"]) != []
