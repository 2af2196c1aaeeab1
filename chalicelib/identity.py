"""Who a request is, as the authorizer established it, and where it came from."""
from collections import namedtuple


ROLE_SEPARATOR = ","


# A named tuple, not a dataclass: it is made at every cold start, and a
# dataclass costs a millisecond to make.
class Origin(namedtuple("Origin", "ip device")):
    """Where a request came from, for the events it causes: the client's
    address and its device (a login's description, else the User-Agent)."""

    __slots__ = ()


NOWHERE = Origin(None, None)  # no request: an operator's command


class Identity(namedtuple("Identity", "user_id token_id username")):
    """The caller of a request that the authorizer let through.

    No roles: the context carries the ones the authorizer read, for other
    APIs behind it, but this service's admin routes read them again with
    their target (service.admin_target).
    """

    __slots__ = ()

    def context(self, roles):
        """The authorizer's context for this caller, with its current
        ``roles`` (API Gateway hands it to the view, which reads it back
        with :meth:`from_context`).

        API Gateway takes only strings, numbers and booleans as context
        values, so the roles travel as one string, joined by
        :data:`ROLE_SEPARATOR` (``""`` for none); no role name holds one.
        """
        return {**self._asdict(), "roles": ROLE_SEPARATOR.join(roles)}

    @classmethod
    def from_context(cls, context):
        return cls(*(context[name] for name in cls._fields))
