"""The authorizer, offered to the account's other REST APIs
(docs/protect-your-api.md): its ARN exported, and their right to invoke it.

Chalice's own permission lets only this stack's API call the function; this
one lets any REST API of the same account and region call it as an
authorizer (API Gateway's source ARN for an authorizer invocation is
``arn:...:execute-api:<region>:<account>:<api-id>/authorizers/<id>``), and
nothing else: no other account, no API method, no other service.
"""
FUNCTION = "TokenAuthorizer"  # chalice's logical id for the authorizer's function
EXPORT_SUFFIX = "TokenAuthorizerArn"


def resources():
    return {f"{FUNCTION}AccountApisInvokePermission": {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [FUNCTION, "Arn"]},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                                     "${AWS::AccountId}:*/authorizers/*"},
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
