"""Who a request is, as the authorizer established it, and where it came from."""
from collections import namedtuple


# A named tuple, not a dataclass: it is made at every cold start, and a
# dataclass costs a millisecond to make.
class Origin(namedtuple("Origin", "ip device")):
    """Where a request came from, for the events it causes: the client's
    address and its device (a login's description, else the User-Agent)."""

    __slots__ = ()


NOWHERE = Origin(None, None)  # no request: an operator's command


class Identity(namedtuple("Identity", "user_id token_id username")):
    """The caller of a request that the authorizer let through.

    No roles: a token record is written at login and roles change after
    it, so whatever needs a role reads the user's current ones.
    """

    __slots__ = ()

    def context(self):
        """The authorizer's context for this caller (API Gateway hands it
        to the view, which reads it back with :meth:`from_context`)."""
        return self._asdict()

    @classmethod
    def from_context(cls, context):
        return cls(*(context[name] for name in cls._fields))
