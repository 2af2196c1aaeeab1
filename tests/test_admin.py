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
