"""The authorizer, offered to the account's other REST APIs
(docs/protect-your-api.md): its ARN exported, and their right to invoke it.

Chalice's own permission lets only this stack's API call the function; this
one lets any REST API of the same account and region call it as an
authorizer, and nothing else: no other account, no other service, and no
API method, which would make the authorizer a backend that answers anyone
who a token belongs to.

API Gateway calls an authorizer with the source ARN
``arn:...:execute-api:<region>:<account>:<api-id>/authorizers/<id>``, and a
method's backend with ``...:<api-id>/<stage>/<METHOD>/<path>``. IAM's
ArnLike, which checks the SourceArn, has only ``*`` (any run of characters,
``/`` included) and ``?`` (exactly one): ``*/authorizers/*`` also matches
``<api-id>/prod/GET/authorizers/who``. So the ids are spelled by their
length, as API Gateway makes them (a REST API's 10 characters, an
authorizer's 6): after the API id must come ``/authorizers/`` at once, and
nothing after the authorizer id. Should AWS ever lengthen them, the other
APIs' calls are refused (their callers get a 5xx), never widened. What
remains is in docs/security.md's limits.
"""
FUNCTION = "TokenAuthorizer"  # chalice's logical id for the authorizer's function
EXPORT_SUFFIX = "TokenAuthorizerArn"
API_ID = "?" * 10
AUTHORIZER_ID = "?" * 6


def resources():
    return {f"{FUNCTION}AccountApisInvokePermission": {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [FUNCTION, "Arn"]},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                                     f"${{AWS::AccountId}}:{API_ID}/authorizers/{AUTHORIZER_ID}"},
        },
    }}


def outputs():
    """The ARN, exported under the stack's name: ``<stack>-TokenAuthorizerArn``."""
    return {EXPORT_SUFFIX: {
        "Description": "The token authorizer: attach it to other REST APIs of this account "
                       "(docs/protect-your-api.md).",
        "Value": {"Fn::GetAtt": [FUNCTION, "Arn"]},
        "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-" + EXPORT_SUFFIX}},
    }}
