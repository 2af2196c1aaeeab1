"""Loading PyJWT and boto3 as if cryptography and pyOpenSSL were absent.

Passkeys put cryptography in the zip (fido2 needs it). PyJWT imports
cryptography whenever it can, for the RSA and EC algorithms that this
service never accepts (HS256 only), and botocore imports pyOpenSSL
whenever it can (a developer's environment may hold it), only to reach
the ssl module's SSLContext through it. Both would add tens of
milliseconds to every cold start, the authorizer's included, for nothing
it uses. Hidden while those
two load, PyJWT and botocore take their plain paths; the passkey routes
then find both as usual.
"""
import contextlib
import sys

HIDDEN = ("cryptography", "OpenSSL")


@contextlib.contextmanager
def without_cryptography():
    """Within: ``import cryptography`` and ``import OpenSSL`` raise
    ModuleNotFoundError (a None in sys.modules does that); after: as before."""
    kept = {name: sys.modules.get(name) for name in HIDDEN}
    for name in HIDDEN:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name, module in kept.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module
