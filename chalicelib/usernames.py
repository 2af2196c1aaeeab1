"""The username rule, and the fold that makes names unique without regard
to case. The use cases fold a name once, where a request enters them
(login_store.name), and pass the result down.
"""
import re

USERNAME = re.compile(r"[A-Za-z0-9_.\-]{3,32}")


def folded_username(text):
    """``text`` without regard to case when it is a username; None when it
    breaks the rule. The rule comes first: lower() maps some non-ASCII
    characters onto ASCII letters (the Kelvin sign onto ``k``), so a fold
    before the check would let a lookalike stand for a real name."""
    return text.lower() if USERNAME.fullmatch(text) else None

