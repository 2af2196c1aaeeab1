"""Who a request is, as the authorizer established it."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """The caller of a request that the authorizer let through.

    No roles: a token record is written at login and roles change after
    it, so whatever needs a role reads the user's current ones.
    """

    user_id: str
    token_id: str
    username: str

    def context(self):
        """The authorizer's context for this caller (API Gateway hands it
        to the view, which reads it back with :meth:`from_context`)."""
        return {"user_id": self.user_id, "token_id": self.token_id, "username": self.username}

    @classmethod
    def from_context(cls, context):
        return cls(user_id=context["user_id"], token_id=context["token_id"],
                   username=context["username"])
