"""The admin routes: another user's tokens."""
import pytest


def test_an_admin_lists_another_users_tokens(api, admin):
    api.user("alice")
    api.token("alice")
    reply = api.call("GET", "/api/v1/admin/users/alice/tokens", token=admin)
    assert reply.status == 200
    assert len(reply.json["tokens"]) == 2
    assert all(t["current"] is False for t in reply.json["tokens"])


def test_the_username_is_matched_without_regard_to_case(api, admin):
    api.user("Alice")
    assert api.call("GET", "/api/v1/admin/users/aLiCe/tokens", token=admin).status == 200


def test_an_admin_pages_with_a_cursor(api, admin):
    api.user("alice")
    api.token("alice")
    first = api.call("GET", "/api/v1/admin/users/alice/tokens?limit=1", token=admin).json
    second = api.call("GET", f"/api/v1/admin/users/alice/tokens?limit=1&cursor={first['next_cursor']}",
                      token=admin).json
    assert first["tokens"][0]["id"] > second["tokens"][0]["id"]
    assert second["next_cursor"] is None


def test_a_self_listing_cursor_is_not_an_admin_listing_cursor(api, admin):
    alice = api.user("alice")
    api.token("alice")
    cursor = api.call("GET", "/api/v1/tokens?limit=1", token=alice).json["next_cursor"]
    reply = api.call("GET", f"/api/v1/admin/users/alice/tokens?cursor={cursor}", token=admin)
    assert reply.status == 422


def test_an_admin_revokes_every_token_of_another_user(api, admin):
    tokens = [api.user("alice"), api.token("alice")]
    reply = api.call("DELETE", "/api/v1/admin/users/ALICE/tokens", token=admin)
    assert reply.status == 200 and reply.json == {"revoked": 2}
    assert all(api.call("GET", "/api/v1/users/me", token=t).status == 403 for t in tokens)
    assert api.call("GET", "/api/v1/users/me", token=admin).status == 200


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("target", ["bob", "nobody"])
def test_a_non_admin_gets_403_whether_or_not_the_user_exists(api, method, target):
    alice = api.user("alice")
    api.user("bob")
    reply = api.call(method, f"/api/v1/admin/users/{target}/tokens", token=alice)
    assert reply.status == 403 and reply.json["error"] == "forbidden"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("target", ["nobody", "bad%20name", "x" * 40])
def test_an_unknown_user_is_404(api, admin, method, target):
    reply = api.call(method, f"/api/v1/admin/users/{target}/tokens", token=admin)
    assert reply.status == 404 and reply.json["error"] == "user_not_found"


def test_a_bad_limit_is_422_for_admins_too(api, admin):
    api.user("alice")
    reply = api.call("GET", "/api/v1/admin/users/alice/tokens?limit=0", token=admin)
    assert reply.status == 422


def test_a_non_admin_cannot_revoke_anyone(api):
    alice = api.user("alice")
    bob = api.user("bob")
    api.call("DELETE", "/api/v1/admin/users/bob/tokens", token=alice)
    assert api.call("GET", "/api/v1/users/me", token=bob).status == 200


def test_the_admin_role_shows_in_the_user(api, admin):
    assert api.call("GET", "/api/v1/users/me", token=admin).json["roles"] == ["admin"]


def test_an_admin_listing_its_own_tokens_sees_which_one_is_current(api, admin):
    api.token("root")
    reply = api.call("GET", "/api/v1/admin/users/root/tokens", token=admin)
    current = [t["id"] for t in reply.json["tokens"] if t["current"]]
    mine = api.call("GET", "/api/v1/tokens", token=admin).json["tokens"]
    assert len(reply.json["tokens"]) == 2
    assert current == [t["id"] for t in mine if t["current"]] and len(current) == 1


def test_an_admin_gets_a_bad_limit_and_a_bad_cursor_named_together(api, admin):
    api.user("alice")
    reply = api.call("GET", "/api/v1/admin/users/alice/tokens?limit=101&cursor=x", token=admin)
    assert reply.status == 422 and set(reply.json["fields"]) == {"limit", "cursor"}


# Admin rights follow the live role: read on every admin request, never
# taken from the token.

ADMIN_ROUTE = "/api/v1/admin/users/alice/tokens"


def admin_route(api, token):
    return api.call("GET", ADMIN_ROUTE, token=token).status


def roles_shown(api, token):
    return api.call("GET", "/api/v1/users/me", token=token).json["roles"]


def test_a_demoted_admin_is_refused_on_its_very_next_request(api, admin):
    from chalicelib import service

    api.user("alice")
    assert admin_route(api, admin) == 200
    service.admin.revoke_admin("root")
    reply = api.call("GET", ADMIN_ROUTE, token=admin)
    assert reply.status == 403 and reply.json["error"] == "forbidden"
    assert api.call("DELETE", ADMIN_ROUTE, token=admin).status == 403


def test_a_promoted_user_is_an_admin_on_its_next_request_without_a_new_login(api):
    from chalicelib import service

    alice = api.user("alice")
    assert admin_route(api, alice) == 403
    service.admin.grant_admin("alice")
    assert admin_route(api, alice) == 200


@pytest.mark.parametrize("initial", [[], ["admin"], ["auditor"], ["admin", "auditor"]])
def test_users_me_and_the_admin_routes_agree_through_grants_and_revocations(api, initial):
    from chalicelib import service

    service.account.signup("alice", "alice@example.com", "alice password 1", roles=initial)
    token = api.token("alice", "alice password 1")
    for change in (None, service.admin.grant_admin, service.admin.revoke_admin,
                   service.admin.grant_admin):
        if change:
            change("alice")
        shown = roles_shown(api, token)
        assert ("admin" in shown) == (admin_route(api, token) == 200), (change, shown)


def test_a_user_with_two_roles_keeps_both_and_is_an_admin(api):
    from chalicelib import service

    service.account.signup("alice", "alice@example.com", "alice password 1", roles=["admin", "auditor"])
    token = api.token("alice", "alice password 1")
    assert roles_shown(api, token) == ["admin", "auditor"]
    assert admin_route(api, token) == 200
    service.admin.revoke_admin("alice")
    assert roles_shown(api, token) == ["auditor"]
    assert admin_route(api, token) == 403


def test_a_token_record_that_says_admin_grants_nothing(api, dynamodb, table_names):
    """Records written at login once carried the user's roles, and the
    admin routes trusted them; now the user's current roles decide."""
    alice = api.user("alice")
    for item in dynamodb.scan(TableName=table_names["tokens"])["Items"]:
        dynamodb.update_item(TableName=table_names["tokens"],
                             Key={"user_id": item["user_id"], "token_id": item["token_id"]},
                             UpdateExpression="SET #r = :r", ExpressionAttributeNames={"#r": "roles"},
                             ExpressionAttributeValues={":r": {"S": "admin"}})
    assert admin_route(api, alice) == 403
    assert roles_shown(api, alice) == []


def test_the_token_record_carries_no_roles_and_the_context_the_live_ones(api, dynamodb,
                                                                         table_names):
    """The context's roles are read from the profile on each request, never
    copied at login: a grant shows on the very next authorization."""
    from chalicelib import authorizer, service

    token = api.user("alice")
    (item,) = dynamodb.scan(TableName=table_names["tokens"])["Items"]
    assert "roles" not in item
    assert authorizer.decide(f"Bearer {token}")["roles"] == ""
    service.admin.grant_admin("alice")
    assert authorizer.decide(f"Bearer {token}")["roles"] == "admin"


def test_an_admin_whose_profile_is_gone_is_refused(api, admin, dynamodb, table_names):
    from chalicelib import service, stores

    api.user("alice")
    dynamodb.delete_item(TableName=table_names["users"],
                         Key=stores.users().user_key(service.admin.find_user("root").user_id))
    assert admin_route(api, admin) == 403
