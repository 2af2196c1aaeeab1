"""@contract keeps each view's declaration, the one the OpenAPI document reads.

app.py's views are decorated once, at import, before a mutation test
switches any mutant on; these tests decorate a view of their own, so that a
change to what the decorator records does not go unnoticed.
"""
from chalice import Chalice

from chalicelib.web import Contract, contracts


def view(request, **kwargs):
    return {}


def test_a_view_keeps_every_part_of_its_declaration():
    contract = contracts(Chalice("declared"))
    shaped = contract(body="LoginIn", answer="LoginOut", status=201, errors=[401, 429],
                      query=["limit"])(view)
    assert shaped.contract == Contract(body="LoginIn", answer="LoginOut", status=201,
                                       errors=(401, 429), query=("limit",))


def test_a_view_that_declares_nothing_answers_any_json_object_with_200():
    shaped = contracts(Chalice("undeclared"))()(view)
    assert shaped.contract == Contract(body=None, answer=None, status=200, errors=(), query=())
