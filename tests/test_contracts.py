"""@contract keeps each view's declaration, the one the OpenAPI document reads.

app.py's views are decorated once, at import, before a mutation test
switches any mutant on; these tests decorate a view of their own, so that a
change to what the decorator records does not go unnoticed.
"""
from chalice import Chalice

from chalicelib.contract import Contract, contracts


def view(request, **kwargs):
    return {}


def test_a_view_keeps_every_part_of_its_declaration():
    contract = contracts(Chalice("declared"))
    shaped = contract(body="LoginIn", answer="LoginOut", status=201, errors=[401, 429],
                      query=["limit"], credentials="client")(view)
    assert shaped.contract == Contract(body="LoginIn", answer="LoginOut", status=201,
                                       errors=(401, 429), query=("limit",), credentials="client")


def test_a_view_that_declares_nothing_answers_any_json_object_with_200():
    shaped = contracts(Chalice("undeclared"))()(view)
    assert shaped.contract == Contract(body=None, answer=None, status=200, errors=(), query=(),
                                       credentials=None)


def test_field_messages_are_always_lists_of_sentences_whatever_shape_marshmallow_gives():
    # The app's flat schemas give {field: [message]}; a nested field or a
    # schema-level error would give a dict or a bare string, and the
    # contract's shape must hold for those too.
    from chalicelib.web import _fields

    assert _fields({"name": ["Missing."], "inner": {"x": ["Bad."]}}) == {
        "name": ["Missing."], "inner": ["{'x': ['Bad.']}"]}
    assert _fields("Bad body.") == {"_body": ["Bad body."]}
    assert _fields(["One.", "Two."]) == {"_body": ["One.", "Two."]}
