"""The tutorial's story, end to end through the app."""
from conftest import PASSWORD


def test_the_tutorial_scenario(api):
    # Sign up and log in from three devices.
    assert api.signup("alice", "alice@example.com", PASSWORD).status == 201
    laptop = api.token(description="laptop")
    phone = api.token(description="phone")
    tablet = api.token(description="tablet")

    # An authorized request (the tutorial's login_required view).
    assert api.call("GET", "/api/v1/users/me", token=laptop).json["username"] == "alice"

    # Log out of the tablet: denied from then on.
    assert api.call("POST", "/api/v1/logout", token=tablet).json == {"revoked": 1}
    assert api.call("GET", "/api/v1/users/me", token=tablet).status == 403

    # List: the two live sessions, this one marked.
    listed = api.call("GET", "/api/v1/tokens", token=laptop).json["tokens"]
    assert [(t["description"], t["current"]) for t in listed] == [("phone", False),
                                                                  ("laptop", True)]

    # Revoke the phone by id.
    phone_id = listed[0]["id"]
    assert api.call("DELETE", f"/api/v1/tokens/{phone_id}", token=laptop).json == {"revoked": 1}
    assert api.call("GET", "/api/v1/users/me", token=phone).status == 403

    # A new login, then revoke all: nothing of alice's passes any more.
    desk = api.token(description="desk")
    assert api.call("DELETE", "/api/v1/tokens", token=laptop).json == {"revoked": 2}
    for token in (laptop, desk):
        assert api.call("GET", "/api/v1/users/me", token=token).status == 403
