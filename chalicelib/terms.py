"""The contract's fixed terms: the path prefix, the size limits, the admin
role and the security log's vocabulary. Plain values, importable without
marshmallow (the authorizer's cold start never loads the schema machinery).
"""
DESCRIPTION_LENGTH = 200
PAGE_SIZE = (1, 100, 50)  # smallest, largest, default
ADMIN = "admin"  # the role that opens the admin routes
EVENT_TYPES = ("login", "login_failed", "locked_out", "logout", "token_revoked",
               "tokens_revoked", "token_evicted", "password_changed", "role_granted",
               "role_revoked", "email_verification_sent", "email_verified", "email_changed",
               "password_reset_requested", "password_reset")
FACTOR_EVENT_TYPES = ("mfa_enabled", "mfa_disabled", "mfa_failed", "recovery_code_used",
                      "recovery_codes_renewed", "passkey_added", "passkey_removed")
EVENT_TYPES += FACTOR_EVENT_TYPES
# How a ``login`` event's session was opened (its ``method``); other events have none.
LOGIN_METHODS = ("password", "password+totp", "password+recovery_code", "password+passkey",
                 "passkey")
# The ways of a password login's second step (mfa_required's ``methods``).
MFA_METHODS = ("totp", "passkey", "recovery_code")
# The second step of a password login: how long its mfa_token lives, and how
# many wrong codes it takes before the password login starts over.
MFA_TOKEN_SECONDS = 300
MFA_WRONG_CODES = 5
# How long a WebAuthn challenge lives (it works once).
CHALLENGE_SECONDS = 300
RECOVERY_CODES = 10  # how many a confirmation or a renewal yields
# A passkey logs in on its own and outlives every token: adding one takes a
# login this recent (the token's own), and a user holds at most this many.
RECENT_LOGIN_SECONDS = 600
MAX_PASSKEYS = 20
# Who acted on an account: the user, an admin (which one is not shown), an
# operator (manage.py), the service itself (eviction by the cap, a lock), or
# a request not proven to be the user's (a failed login at /login, a reset
# asked for by address: anyone can type a name or an address).
EVENT_ACTORS = ("self", "admin", "operator", "system", "unknown")
PREFIX = "/api/v1"  # every route but GET / lives under it
MAX_BODY_BYTES = 64 * 1024
