"""Mail, deployed: the sender and the page's address as template
parameters, which functions get them, and the mail table's stream wired to
the mailer function (app.py's ``mailer``, chalicelib/mailer.py).

Rendered into the deployment template by deploy/template.py; `make deploy`
(deploy/stack.py) sets the parameters from the environment variables of the
same names as the functions read; docs/deploy.md says how to prepare SES.
"""
from dataclasses import dataclass

from chalicelib import config


@dataclass(frozen=True)
class Setting:
    variable: str  # the environment variable the functions read (chalicelib/config.py)
    pattern: str  # what config accepts, for CloudFormation's AllowedPattern
    description: str


# Template parameter: the setting it carries.
PARAMETERS = {
    "EmailFrom": Setting("EMAIL_FROM", config.EMAIL_FROM_PATTERN,
                         "The address mail is sent from: an SES identity verified in the "
                         "stack's region (docs/deploy.md, Mail)."),
    "PublicUrl": Setting("PUBLIC_URL", config.PUBLIC_URL_PATTERN,
                         "The sessions page's https:// address, where the links in mail lead "
                         "and whose origin passkeys are bound to."),
}
# Each function's parameters, as environment variables: a function gets a
# setting when its code reads it. Only the mailer sends mail; PUBLIC_URL is
# also the passkeys' origin (the API handler's), and every function checks
# it at cold start (chalicelib/config.py), so that a stage without it
# refuses to start rather than answer 500 at its first passkey.
FUNCTION_PARAMETERS = {"Mailer": ("EmailFrom", "PublicUrl"), "APIHandler": ("PublicUrl",),
                       "TokenAuthorizer": ("PublicUrl",)}

# The mailer's event source: the outbox's new items only (a TTL's or the
# mailer's own delete streams too, and is dropped before any invocation).
# Up to BATCH_SIZE items per invocation; a batch that fails is halved until
# the item that fails is alone, tried MAX_RETRIES times, then skipped (the
# person asks again). An item sent before the failure is not sent twice:
# the mailer takes each item with a conditional delete. From the oldest
# record kept: nothing written before the mapping existed is missed.
BATCH_SIZE = 10
MAX_RETRIES = 2
# A link that arrives over an hour after it was asked for is not what the
# person waits for any more, and a reset link would be near its end.
MAX_RECORD_AGE_SECONDS = 3600
INSERTS_ONLY = '{"eventName": ["INSERT"]}'


def parameters():
    return {name: {"Type": "String", "AllowedPattern": setting.pattern,
                   "ConstraintDescription": f"{setting.variable} as chalicelib/config.py "
                                            "accepts it",
                   "Description": setting.description}
            for name, setting in PARAMETERS.items()}


def environment():
    """{function resource: its Environment, for the merge}."""
    return {function: {"Environment": {"Variables": {
        PARAMETERS[name].variable: {"Ref": name} for name in names}}}
        for function, names in FUNCTION_PARAMETERS.items()}


def event_source():
    return {"MailerStream": {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": {"Ref": "Mailer"},
            "EventSourceArn": {"Fn::GetAtt": ["MailTable", "StreamArn"]},
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": BATCH_SIZE,
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": MAX_RETRIES,
            "MaximumRecordAgeInSeconds": MAX_RECORD_AGE_SECONDS,
            "FilterCriteria": {"Filters": [{"Pattern": INSERTS_ONLY}]},
        },
    }}
