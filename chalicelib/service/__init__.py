"""What the service does: its use cases, in plain functions of plain values.

One module per family, each opening with the steps of its use cases in
order:

``login``     a login with a password, and every check of a password
``account``   signup, the profile, a password change, the user's security
              log and the account's deletion
``sessions``  logout, revocation and the listing of tokens
``admin``     what admins and operators do to other users
``recovery``  getting back in by email, and proving an address
``factors``   second factors and passkeys: what a user has, setting them
              up and removing them, an operator's reset
``factor_logins``  the logins they make: the second step of a password
              login, a passkey login
              (both imported by their routes only: the authorizer's cold
              start loads nothing of them, nor pyotp or fido2)

Views parse and shape; these functions decide. They raise the errors of
errors.py, never see an HTTP request, and reach the data only through the
stores and their unit of work (stores.py), in the domain's terms.
"""
from chalicelib.service import account, admin, login, recovery, sessions

__all__ = ["account", "admin", "login", "recovery", "sessions"]
