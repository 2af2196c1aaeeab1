"""The README walkthrough, through a client generated from the served OpenAPI
document, as a new user would write it.

    python client_walkthrough.py BASE_URL USERNAME

tests/e2e/test_make_run.py generates ``login_service_client`` beside this file with
openapi-python-client, checks both with ``mypy --strict``, then runs this.
Every answer is narrowed with isinstance, never cast: the document types
each one as its schema or the one Error.
"""
import sys

from login_service_client import AuthenticatedClient, Client
from login_service_client.api.auth import login, signup
from login_service_client.api.tokens import list_tokens, revoke_token, revoke_tokens
from login_service_client.api.users import users_me
from login_service_client.models import (Error, LoginIn, LoginOut, RevokedOut, SignupIn,
                                         TokenPageOut, UserOut)
from login_service_client.types import UNSET, Unset

PASSWORD = "correct horse battery"


def log_in(client: Client, username: str, device: str | Unset = UNSET) -> LoginOut:
    answer = login.sync(client=client,
                        body=LoginIn(username=username, password=PASSWORD, description=device))
    assert isinstance(answer, LoginOut), answer
    assert answer.expires_at.tzinfo is not None and answer.expires_in > 0
    return answer


def main(base: str, username: str) -> None:
    with Client(base_url=base, raise_on_unexpected_status=True) as anonymous:
        # Sign up, then log in from a laptop and from a phone.
        user = signup.sync(client=anonymous, body=SignupIn(
            username=username, email=f"{username}@example.com", password=PASSWORD))
        assert isinstance(user, UserOut), user
        assert user.username == username and user.roles == []
        laptop = log_in(anonymous, username, "laptop")
        phone = log_in(anonymous, username, "phone")

        with AuthenticatedClient(base_url=base, token=laptop.token,
                                 raise_on_unexpected_status=True) as me:
            # Who am I, and which sessions do I have?
            who = users_me.sync(client=me)
            assert isinstance(who, UserOut) and who.id == user.id, who
            page = list_tokens.sync(client=me)
            assert isinstance(page, TokenPageOut), page
            assert [(t.description, t.current) for t in page.tokens] == [
                ("phone", False), ("laptop", True)]
            assert page.next_cursor is None
            assert all(t.created_at < t.expires_at and t.last_used_at is None
                       for t in page.tokens if not t.current)

            # Revoke the phone, log in once more, then revoke everything.
            one = revoke_token.sync(phone.token_id, client=me)
            assert isinstance(one, RevokedOut) and one.revoked == 1, one
            log_in(anonymous, username)
            every = revoke_tokens.sync(client=me)
            assert isinstance(every, RevokedOut) and every.revoked == 2, every

            # The laptop's token is now denied, in the one error shape.
            denied = users_me.sync_detailed(client=me)
            assert denied.status_code == 403, denied
            assert isinstance(denied.parsed, Error) and denied.parsed.error == "access_denied"
            assert denied.headers["Cache-Control"] == "no-store"
    print("walkthrough done")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
