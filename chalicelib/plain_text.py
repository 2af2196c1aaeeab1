"""Text a person reads as it was sent: a token's description and the device
of an event, shown on the sessions page and in the security log, where a
user looks for intrusions.

Control characters (C0, DEL, C1: a terminal's escapes), format characters
(the bidirectional overrides and isolates, which turn "gpj.exe" into what
reads as "exe.jpg", zero-width spaces), line and paragraph separators,
surrogates and private-use characters are invisible or change how the text
around them reads. So are the other characters that Unicode tells a
renderer to show as nothing (Default_Ignorable_Code_Point, outside those
categories: the Hangul fillers, the combining grapheme joiner, the unassigned
tags). Kept, as they hide nothing and writing needs them: the zero-width
joiner (emoji sequences) and non-joiner (Persian, Indic scripts), the
variation selectors of emoji, and the tags of a flag's emoji sequence
(England, Scotland, Wales).
"""
import re
import unicodedata

_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
_JOINERS = frozenset({"\u200c", "\u200d"})
# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties.txt) outside
# the categories above; the emoji variation selectors (U+FE00..FE0F) stay.
_IGNORABLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\uffa0\ufff0-\ufff8"
                        "\U000e0000-\U000e0fff]")
# A flag's tag sequence (Unicode's UTS #51): the black flag, a subdivision
# code in tag letters and digits, the cancel tag.
_FLAG = re.compile("(\U0001f3f4)([\U000e0030-\U000e0039\U000e0061-\U000e007a]{3,6}\U000e007f)")


def _hidden(char):
    return char not in _JOINERS and unicodedata.category(char) in _HIDDEN


def _parts(text):
    """``text`` in pieces: each a flag's tag sequence, kept whole, or plain
    text to be checked character by character (a tag outside a flag is
    hidden)."""
    at = 0
    for flag in _FLAG.finditer(text):
        yield text[at:flag.start(2)], False
        yield flag.group(2), True
        at = flag.end()
    yield text[at:], False


def is_plain(text):
    """Whether ``text`` holds none of the characters above."""
    return all(flag or not (_IGNORABLE.search(part) or any(map(_hidden, part)))
               for part, flag in _parts(text))


def plain(text):
    """``text`` without the characters above."""
    return "".join(part if flag else _IGNORABLE.sub("", "".join(c for c in part if not _hidden(c)))
                   for part, flag in _parts(text))
