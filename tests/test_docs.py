"""The documentation stays true: every test it cites exists, every link
resolves, and it points at nothing outside the repository."""
import glob
import os
import re

import pytest

from conftest import ROOT

DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
TESTS = os.path.join(ROOT, "tests")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def source_of(name):
    """The test file ``name`` (a path below tests/, or a bare file name)."""
    found = [p for p in glob.glob(os.path.join(TESTS, "**", "*.py"), recursive=True)
             if p.endswith(os.sep + name)]
    assert len(found) == 1, f"{name}: {found or 'no such test file'}"
    return found[0]


def cited_tests(text):
    return re.findall(r"`((?:[\w/]+/)?test_\w+\.py)(?:::(\w+))?`", text)


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_every_cited_test_exists(doc):
    for name, function in cited_tests(read(doc)):
        source = read(source_of(name))
        if function:
            assert re.search(rf"^def {function}\(", source, re.M), f"{name}::{function}"


def test_the_security_page_cites_a_test_for_every_protection():
    rows = [line for line in read(os.path.join(ROOT, "docs", "security.md")).splitlines()
            if line.startswith("| ") and not line.startswith(("| protection", "|---"))]
    assert len(rows) > 40
    for row in rows:
        assert cited_tests(row.rsplit("|", 2)[-2]), row


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_every_relative_link_resolves(doc):
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", read(doc)):
        assert os.path.exists(os.path.join(os.path.dirname(doc), target)), target


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_nothing_points_outside_the_repository(doc):
    text = read(doc)
    assert "../shared" not in text and "CONTRACT.md" not in text


def test_the_reference_lists_exactly_the_routes_the_app_has():
    from app import app

    text = read(os.path.join(ROOT, "docs", "api.md"))
    listed = set(re.findall(r"^\| `(GET|POST|DELETE) (/[^`?\s]*)", text, re.M))
    routed = {(method, path) for path, methods in app.routes.items() for method in methods
              if method != "OPTIONS"}
    assert {(m, p) for m, p in listed} == routed


def test_the_module_map_names_every_module_and_nothing_else():
    """docs/design.md's map of chalicelib/ matches the tree."""
    text = read(os.path.join(ROOT, "docs", "design.md"))
    block = text[text.index("chalicelib/           only"):text.index("deploy/               what")]
    named = set(re.findall(r"([\w]+\.py)", block))
    named |= {"__init__.py"}
    tree = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "chalicelib", "**", "*.py"),
                                                    recursive=True)}
    assert named == tree
