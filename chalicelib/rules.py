"""The contract's plain rules, importable without marshmallow (the
authorizer's cold start never loads the schema machinery)."""
import re

USERNAME = re.compile(r"[A-Za-z0-9_.\-]{3,32}")
DESCRIPTION_LENGTH = 200
PAGE_SIZE = (1, 100, 50)  # smallest, largest, default
ADMIN = "admin"  # the role that opens the admin routes
EVENT_TYPES = ("login", "login_failed", "locked_out", "logout", "token_revoked",
               "tokens_revoked", "token_evicted", "password_changed", "role_granted",
               "role_revoked")
# Who acted on an account: the user, an admin (which one is not shown), an
# operator (manage.py), or the service itself (eviction by the cap, a lock).
EVENT_ACTORS = ("self", "admin", "operator", "system")
PREFIX = "/api/v1"  # every route but GET / lives under it
MAX_BODY_BYTES = 64 * 1024


def folded_username(text):
    """``text`` without regard to case when it is a username; None when it
    breaks the rule. The rule comes first: lower() maps some non-ASCII
    characters onto ASCII letters (the Kelvin sign onto ``k``), so a fold
    before the check would let a lookalike stand for a real name."""
    return text.lower() if USERNAME.fullmatch(text) else None
