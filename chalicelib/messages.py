"""What each mail says: its subject and its plain text, written once.

Plain text only: no HTML to render, no remote image to track who opened
it. A link's secret goes after ``#`` in the page's address, so it never
reaches a server log, a proxy or a Referer (the page reads and posts it).
"""
from collections import namedtuple

from chalicelib.config import SERVICE_NAME


class Message(namedtuple("Message", "to subject text")):
    __slots__ = ()


def _hours(seconds):
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


_IGNORE = "If you did not ask for this, ignore this message: nothing changes."
_NOT_YOU = ("If this was not you, someone else knows your password or reads this mailbox: "
            "reset your password from the sign-in page at once, and tell the service's "
            "operator.")


def reset_link(to, username, url, seconds):
    return Message(to, f"Reset your {SERVICE_NAME} password", (
        f"Someone asked to reset the password of the account {username}.\n\n"
        f"To choose a new password, open this link within {_hours(seconds)}:\n\n{url}\n\n"
        "It works once, and signs the account out everywhere.\n\n" + _IGNORE + "\n"))


def verify_link(to, username, url, seconds):
    return Message(to, f"Confirm your email address for {SERVICE_NAME}", (
        f"Someone asked to use this address for the account {username}.\n\n"
        f"To confirm that it is yours, open this link within {_hours(seconds)}:\n\n{url}\n\n"
        + _IGNORE + "\n"))


_NOTICES = {
    "password_changed": ("Your {service} password was changed",
                         "The password of the account {username} was changed."),
    "password_reset": ("Your {service} password was reset",
                       "The password of the account {username} was reset by a link sent to "
                       "this address, and every session of the account was signed out."),
    "email_changed": ("Your {service} email address was changed",
                      "The email address of the account {username} was changed: mail about "
                      "the account no longer comes to this address."),
    "mfa_enabled": ("A second factor was turned on for your {service} account",
                    "An authenticator app (TOTP) now guards the account {username}: a login "
                    "with the password also asks for its code."),
    "mfa_disabled": ("A second factor was turned off for your {service} account",
                     "The authenticator app (TOTP) of the account {username} was turned off, "
                     "or an operator removed every second factor of it."),
    "recovery_codes_renewed": ("New recovery codes for your {service} account",
                               "New recovery codes were made for the account {username}; "
                               "the old ones no longer work."),
    "passkey_added": ("A passkey was added to your {service} account",
                      "A new passkey can now sign in to the account {username}."),
    "passkey_removed": ("A passkey was removed from your {service} account",
                        "A passkey of the account {username} was removed."),
}


def notice(to, username, kind):
    subject, what = _NOTICES[kind]
    return Message(to, subject.format(service=SERVICE_NAME),
                   what.format(username=username) + "\n\n" + _NOT_YOU + "\n")
