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


STORES = ["chalicelib.stores", "chalicelib.user_store", "chalicelib.login_store",
          "chalicelib.token_store", "chalicelib.event_store", "chalicelib.client_store",
          "chalicelib.factor_store"]
USE_CASES = ["chalicelib/service/__init__.py", "chalicelib/service/login.py",
             "chalicelib/service/account.py", "chalicelib/service/sessions.py",
             "chalicelib/service/admin.py", "chalicelib/service/factors.py",
             "chalicelib/service/factor_logins.py",
             "chalicelib/introspection.py", "chalicelib/clients.py"]
DRIVER = ["chalicelib.dynamo", "chalicelib.aws", "boto3", "botocore"]


@pytest.mark.parametrize("path,forbidden", [
    # Views parse, call the use cases and shape: no storage, no AWS.
    ("app.py", DRIVER + STORES + ["chalicelib.unit_of_work"]),
    # The use cases speak in domain terms: stores and their unit of work.
    *((path, DRIVER) for path in USE_CASES),
    # The edge and the authorizer need a store or an identity, not the use cases.
    ("chalicelib/web.py", ["chalicelib.service", "chalicelib.contract", "chalicelib.dynamo",
                           "chalicelib.event_store"]),
    ("chalicelib/contract.py", ["chalicelib.service", "chalicelib.dynamo", *STORES]),
    ("chalicelib/authorizer.py", ["chalicelib.service", "chalicelib.dynamo"]),
    # Domain errors carry no HTTP: only contract.py maps them.
    ("chalicelib/errors.py", ["chalice", "chalicelib.web", "chalicelib.contract"]),
    # The stores reach DynamoDB through dynamo.py's calls only, and know no use case.
    *((store.replace(".", "/") + ".py", ["chalicelib.aws", "boto3", "botocore",
                                         "chalicelib.service"]) for store in STORES),
    # The unit of work sits on the driver, under every store.
    ("chalicelib/unit_of_work.py", ["chalicelib.aws", "boto3", "chalicelib.service", *STORES]),
])
def test_no_layer_reaches_past_the_next(path, forbidden):
    assert touches(source_of(path), forbidden) == []


@pytest.mark.parametrize("line", ["import boto3.session", "from chalicelib import dynamo",
                                  "from chalicelib.dynamo import S", "def f():\n    import boto3"])
def test_the_check_sees_every_form_of_import(line):
    assert touches(line, ["boto3", "chalicelib.dynamo"]) != []


def module_files():
    """Every module of the Lambda functions' code, by its dotted name."""
    found = {"app": "app.py"}
    for folder, _, files in os.walk(os.path.join(ROOT, "chalicelib")):
        for file in files:
            if file.endswith(".py"):
                path = os.path.relpath(os.path.join(folder, file), ROOT)
                dotted = path[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def import_graph():
    """Module -> the modules of ours it imports, at the top or inside a
    function. ``from a import b`` counts as importing ``a.b`` where that is
    a module, else ``a``; a package's parent is not an edge (Python runs it
    first, but it imports nothing of its children unless it says so)."""
    modules = module_files()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for name in imported(source_of(path)):
            if name in modules:
                edges.add(name)
            elif name.rpartition(".")[0] in modules:
                edges.add(name.rpartition(".")[0])
        graph[module] = {e for e in edges if e != module}
    # ``from chalicelib import x`` adds both chalicelib and chalicelib.x: the
    # package itself is empty, so drop it.
    for edges in graph.values():
        edges.discard("chalicelib")
    return graph


def cycles(graph):
    """Each cycle of ``graph``, as found by a depth-first walk."""
    found, state = [], {}

    def walk(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    return found


def test_no_module_imports_one_that_imports_it_back():
    """No import cycle, not even through an import inside a function (which
    would only hide one)."""
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_through_a_function_local_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
