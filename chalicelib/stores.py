"""The service's way to its data: one store per kind of item, and the unit
of work that several of them write through at once.

Each store is handed its table from configuration here, so the use cases,
the authorizer and the operator commands name a store and never a table;
they write across stores with a :class:`Transaction`, never with DynamoDB's
own terms. :func:`read` is the other way round: items of several stores
(each store's ``read...`` describes one) in one strongly consistent call.
"""
from chalicelib import config
from chalicelib.dynamo import Contended, read
from chalicelib.event_store import EventStore
from chalicelib.login_store import LoginStore
from chalicelib.token_store import TokenStore
from chalicelib.unit_of_work import StaleWrite, Transaction, after_lost_race
from chalicelib.user_store import UserStore

__all__ = ["Contended", "StaleWrite", "Transaction", "after_lost_race", "clients", "events",
           "factors", "links", "logins", "outbox", "read", "tokens", "users"]


def users():
    return UserStore(config.users_table())


def logins():
    # Logins and attempts are items of the users table too.
    return LoginStore(config.users_table())


def tokens():
    return TokenStore(config.tokens_table())


def events():
    return EventStore(config.events_table())


def clients():
    # Introspection clients are items of the users table (``client#<id>``):
    # the functions' roles already reach it, and no table is added. Loaded
    # here, not at the top: the authorizer's cold start never needs it.
    from chalicelib.client_store import ClientStore

    return ClientStore(config.users_table())


def links():
    # Links and mail limits are items of the users table too; loaded here,
    # not at the top: the authorizer's cold start never needs them.
    from chalicelib.link_store import LinkStore

    return LinkStore(config.users_table())


def outbox():
    from chalicelib.outbox import Outbox

    return Outbox(config.mail_table())
def factors():
    # Second factors, challenges and mfa tokens are items of the users table
    # too, under prefixes the authorizer's role cannot read. Loaded here:
    # the authorizer's cold start never needs it.
    from chalicelib.factor_store import FactorStore

    return FactorStore(config.users_table())
