"""The documentation stays true: every test it cites exists, every link
resolves, and it points at nothing outside the repository."""
import glob
import json
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


# --- the deployment page against the files it describes --------------------

DEPLOY = os.path.join(ROOT, "docs", "deploy.md")
NUMBERS = {"both": 2, "two": 2, "three": 3, "four": 4, "five": 5}


def table_rows(text, header):
    """The rows of the markdown table whose header line starts with ``header``,
    each a dict by column name, keyed by its first cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    columns = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = dict(zip(columns, cells))
    return rows


def table_statements(policy, resource):
    return [s for s in policy["Statement"] if s["Resource"] == {"Fn::GetAtt": [resource, "Arn"]}]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_least_privilege_table_is_each_stages_policies(stage):
    """Per function and table: the actions outside parentheses are exactly the
    policy's, and each name in parentheses is one of its conditions'."""
    files = {"API handler": f"policy-{stage}.json", "authorizer": f"policy-authorizer-{stage}.json",
             "mailer": f"policy-mailer-{stage}.json"}
    rows = table_rows(read(DEPLOY), "| function | tokens table |")
    assert set(rows) == set(files)
    for function, row in rows.items():
        with open(os.path.join(ROOT, ".chalice", files[function]), encoding="utf-8") as f:
            policy = json.load(f)
        for column, resource in (("tokens table", "TokensTable"), ("users table", "UsersTable"),
                                 ("events table", "EventsTable"), ("mail table", "MailTable")):
            statements = table_statements(policy, resource)
            granted = {action.split(":")[1] for s in statements for action in s["Action"]}
            cell = row[column]
            listed = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", cell)))
            assert listed == granted, (function, column)
            assert (cell == "nothing") == (not granted), (function, column)
            for detail in re.findall(r"`([^`]+)`", " ".join(re.findall(r"\(([^)]*)\)", cell))):
                assert detail in json.dumps(statements), (function, column, detail)
        others = {action for s in policy["Statement"] if "Fn::GetAtt" not in s["Resource"]
                  for action in s["Action"]}
        assert set(re.findall(r"`(\w+:\w+)`", row["other"])) == others, function


def test_the_parameters_table_is_the_templates():
    from deploy import template

    rows = table_rows(read(DEPLOY), "| parameter |")
    parameters = template.merge_template("dev")["Parameters"]
    assert {name.strip("`") for name in rows} == set(parameters)
    for name, row in rows.items():
        default = parameters[name.strip("`")].get("Default")
        if default is None:
            assert row["default"] == "required", name
        else:
            assert row["default"].startswith(f"`{default}`") if default != "" else \
                row["default"] == "empty", name


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_the_number_of_tables_is_the_number_defined(doc):
    from deploy import tables

    for word in re.findall(r"\b(both|two|three|four|five)\s+(?:DynamoDB\s+)?tables\b", read(doc),
                           re.I):
        assert NUMBERS[word.lower()] == len(tables.DEFINITIONS), word


# --- every page ----------------------------------------------------------------

def headings(text):
    """(level, title) of each heading outside fenced code blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#+) (.*)", line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_headings_start_at_one_title_and_go_down_one_level_at_a_time(doc):
    levels = [level for level, _ in headings(read(doc))]
    assert levels[0] == 1 and levels.count(1) == 1, levels
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, headings(read(doc))


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_every_stage_url_names_a_deployed_stage_and_a_route(doc):
    from app import app

    deployed = {name for name, stage in stage_config()["stages"].items()
                if "JWT_SECRET_PARAMETER" in stage["environment_variables"]}
    for stage, path in re.findall(r"execute-api\.[^/\s`]*amazonaws\.com/([^/\s`\"')]+)"
                                  r"(/[^\s`\"')]*)?", read(doc)):
        assert stage in deployed | {"<stage>", "STAGE"}, (stage, path)
        assert path in ("", "/") or path in app.routes, (stage, path)


def stage_config():
    with open(os.path.join(ROOT, ".chalice", "config.json"), encoding="utf-8") as f:
        return json.load(f)
