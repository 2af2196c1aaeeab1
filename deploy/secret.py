"""A stage's signing secret in SSM Parameter Store (``JWT_SECRET_PARAMETER``).

CloudFormation cannot create SecureString parameters, and the secret must
not be in the template anyway, so `make deploy` creates it before the stack
when it is missing. The value is made here and handed to SSM in the API
call: it is never printed, never written to a file and never on a command
line (where `ps` and shell history would see it).
"""
import secrets

# 48 random bytes, 64 characters of URL-safe text: well above the 32 bytes
# the functions require (chalicelib/signing_keys.py, MIN_BYTES).
RANDOM_BYTES = 48


def ensure(ssm, name):
    """Create the SecureString ``name`` with a fresh random value unless it
    exists. Returns True if it created it.

    Existence is read from the parameter's metadata, which needs no
    ``kms:Decrypt``; a parameter of another type is refused, since a plain
    String would keep the secret unencrypted.
    """
    found = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"]
    if found:
        if found[0]["Type"] != "SecureString":
            raise SystemExit(f"SSM parameter {name} is a {found[0]['Type']}, not a SecureString: "
                             f"delete it (aws ssm delete-parameter --name {name}) and deploy again")
        return False
    try:
        ssm.put_parameter(Name=name, Type="SecureString", Overwrite=False,
                          Value=secrets.token_urlsafe(RANDOM_BYTES),
                          Description="The JWT signing secret (make deploy created it)")
    except ssm.exceptions.ParameterAlreadyExists:
        return False  # another deployment created it first: keep theirs
    return True
