"""A stage's signing secret in SSM Parameter Store (``JWT_SECRET_PARAMETER``).

    python -m deploy.secret --stage dev --roll

CloudFormation cannot create SecureString parameters, and the secret must
not be in the template anyway, so `make deploy` creates it before the stack
when it is missing; ``--roll`` gives it a new version (docs/deploy.md,
Rolling the secret). Each value is made here and handed to SSM in the API
call: it is never printed, never written to a file and never on a command
line (where `ps` and shell history would see it).
"""
import argparse
import secrets
import sys

import boto3

from deploy import stages

# 48 random bytes, 64 characters of URL-safe text: well above the 32 bytes
# the functions require (chalicelib/signing_keys.py, MIN_BYTES).
RANDOM_BYTES = 48


def parameter_name(stage):
    """The stage's ``JWT_SECRET_PARAMETER``; a stage without one is not deployed."""
    name = stages.config(stages.ROOT, stage).environment_variables.get("JWT_SECRET_PARAMETER")
    if not name:
        raise SystemExit(f"stage {stage!r} has no JWT_SECRET_PARAMETER in .chalice/config.json: "
                         "it is not a deployed stage")
    return name


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


def roll(ssm, name):
    """A new random version of the existing SecureString ``name``; returns
    its version number. The functions accept the version before it too."""
    if ensure(ssm, name):
        raise SystemExit(f"SSM parameter {name} did not exist: created it (version 1), "
                         "nothing to roll")
    return ssm.put_parameter(Name=name, Type="SecureString", Overwrite=True,
                             Value=secrets.token_urlsafe(RANDOM_BYTES))["Version"]


def main(argv=None, session=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", required=True, help="stage of .chalice/config.json")
    parser.add_argument("--roll", action="store_true",
                        help="give the secret a new version (without it: create it if missing)")
    args = parser.parse_args(argv)
    name = parameter_name(args.stage)
    ssm = (session or boto3.session.Session()).client("ssm")
    if args.roll:
        print(f"rolled {name} to version {roll(ssm, name)}")
    else:
        print(f"created {name}" if ensure(ssm, name) else f"{name} exists: kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
