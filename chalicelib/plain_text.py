"""Text a person reads as it was sent: a token's description and the device
of an event, shown on the sessions page and in the security log, where a
user looks for intrusions.

Control characters (C0, DEL, C1: a terminal's escapes), format characters
(the bidirectional overrides and isolates, which turn "gpj.exe" into what
reads as "exe.jpg", zero-width spaces), line and paragraph separators,
surrogates and private-use characters are invisible or change how the text
around them reads. The zero-width joiner is the one format character kept:
emoji sequences are made of it, and it hides nothing.
"""
import unicodedata

_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
_JOINER = "\u200d"


def _hidden(char):
    return char != _JOINER and unicodedata.category(char) in _HIDDEN


def is_plain(text):
    """Whether ``text`` holds none of the characters above."""
    return not any(_hidden(char) for char in text)


def plain(text):
    """``text`` without the characters above."""
    return "".join(char for char in text if not _hidden(char))
