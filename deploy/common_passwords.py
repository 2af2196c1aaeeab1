"""Rebuild chalicelib/common-passwords.txt.gz, the list signup and password
change refuse, from zxcvbn's (a dev dependency only: the Lambda package
ships the small file, not zxcvbn).

    python -m deploy.common_passwords        (make common-passwords)
"""
import gzip
import sys

from chalicelib import passwords
from chalicelib.schemas import PASSWORD_LENGTH


def build(path=None):
    """Write the list to ``path`` (the shipped file by default); how many
    passwords it holds."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    # Shorter ones are refused by the length rule already.
    words = [w for w in FREQUENCY_LISTS["passwords"] if len(w) >= PASSWORD_LENGTH.min]
    with open(path or passwords.COMMON_PASSWORDS, "wb") as f:
        # mtime=0: the same list always gives the same bytes.
        f.write(gzip.compress("\n".join(words).encode("utf-8"), compresslevel=9, mtime=0))
    return len(words)


def main():
    print(f"{build()} passwords written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
