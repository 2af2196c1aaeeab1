"""A DynamoDB fault at any call a route makes is a 503 with Retry-After.

Each route is run once to count the DynamoDB calls its view makes (the
authorizer's are not counted: its faults are tested in test_authorizer.py),
then once per call site with a fault injected exactly there.
"""
import itertools

import pytest

from chalicelib import authorizer
from conftest import PASSWORD
from faults import client_error, timeout

_names = itertools.count()


def world(api):
    """A fresh user with two tokens, and an admin."""
    n = next(_names)
    me, admin = f"user{n}", f"admin{n}"
    from chalicelib import service

    service.account.signup(admin, f"{admin}@example.com", PASSWORD, roles=["admin"])
    token = api.user(me)
    other = api.login(me).json
    return {"me": me, "token": token, "other": other, "admin": api.token(admin)}


ROUTES = {
    "signup": lambda api, w: api.signup(f"new{next(_names)}"),
    "login": lambda api, w: api.login(w["me"]),
    "failed login": lambda api, w: api.login(w["me"], "wrong password"),
    "logout": lambda api, w: api.call("POST", "/api/v1/logout", token=w["token"]),
    "me": lambda api, w: api.call("GET", "/api/v1/users/me", token=w["token"]),
    "list": lambda api, w: api.call("GET", "/api/v1/tokens", token=w["token"]),
    "revoke": lambda api, w: api.call("DELETE", f"/api/v1/tokens/{w['other']['token_id']}",
                                      token=w["token"]),
    "revoke all": lambda api, w: api.call("DELETE", "/api/v1/tokens", token=w["token"]),
    "admin list": lambda api, w: api.call("GET", f"/api/v1/admin/users/{w['me']}/tokens",
                                          token=w["admin"]),
    "events": lambda api, w: api.call("GET", "/api/v1/users/me/events", token=w["token"]),
    "admin events": lambda api, w: api.call("GET", f"/api/v1/admin/users/{w['me']}/events",
                                            token=w["admin"]),
    "admin revoke": lambda api, w: api.call("DELETE", f"/api/v1/admin/users/{w['me']}/tokens",
                                            token=w["admin"]),
    "password": lambda api, w: api.call(
        "POST", "/api/v1/users/me/password", token=w["token"],
        body={"current_password": PASSWORD, "new_password": "another password"}),
    "delete me": lambda api, w: api.call("DELETE", "/api/v1/users/me", token=w["token"],
                                         body={"password": PASSWORD}),
}

FAULTS = {
    "throttled": lambda p: client_error("ThrottlingException"),
    "5xx": lambda p: client_error("InternalServerError", status=500),
    "timeout": timeout,
}


@pytest.fixture
def injector(dynamodb, monkeypatch):
    """Counts the view's DynamoDB calls; fails the one numbered ``fail_at``."""
    state = {"calls": 0, "fail_at": None, "fault": None, "in_authorizer": False}
    decide = authorizer.decide

    def traced(header):
        state["in_authorizer"] = True
        try:
            return decide(header)
        finally:
            state["in_authorizer"] = False

    monkeypatch.setattr(authorizer, "decide", traced)

    def hook(params, **kwargs):
        if state["in_authorizer"]:
            return None
        state["calls"] += 1
        if state["calls"] - 1 == state["fail_at"]:
            return state["fault"](params)
        return None

    dynamodb.meta.events.register("before-call.dynamodb", hook)
    return state


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("route", ROUTES)
def test_every_call_site_answers_503(api, injector, route, fault):
    run = ROUTES[route]
    injector.update(calls=0, fail_at=None)
    w = world(api)
    injector["calls"] = 0
    run(api, w)
    sites = injector["calls"]
    assert sites >= 1
    for site in range(sites):
        w = world(api)
        injector.update(calls=0, fail_at=site, fault=FAULTS[fault])
        reply = run(api, w)
        injector["fail_at"] = None
        assert reply.status == 503, (route, site, reply.json)
        assert reply.json["error"] == "service_unavailable"
        assert reply.headers["Retry-After"] == "1"
