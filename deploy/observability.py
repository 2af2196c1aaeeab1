"""What operators see of a deployed stage, defined once: API Gateway's
access log, metrics from the service's own log lines, and the alarms on them.

Rendered into the deployment template by deploy/template.py; the numbers and
what each alarm means are in docs/deploy.md.
"""
import json
from dataclasses import dataclass

from chalicelib.backoff import THRESHOLD
from chalicelib.config import SERVICE_NAME

LOG_RETENTION_DAYS = 30

# One JSON object per request. Never $context.error.message: for an
# Authorization header API Gateway cannot parse, it quotes the header, token
# and all. Nor $context.path: it is the URL as sent, and a token pasted into
# one (DELETE /api/v1/tokens/<the JWT>) would stay in the log; the route
# template says which route was called. Values are quoted, as API Gateway
# writes "-" for an empty one.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTimeEpoch",
    "sourceIp": "$context.identity.sourceIp",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    # Which Gateway Response answered (THROTTLED, ACCESS_DENIED, ...), if any.
    "responseType": "$context.error.responseType",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "authorizer": {
        "status": "$context.authorizer.status",
        "error": "$context.authorizer.error",
        "latency": "$context.authorizer.latency",
        # The authorizer's context (chalicelib/authorizer.py): who, never the token.
        "user_id": "$context.authorizer.user_id",
    },
}


def access_log_format():
    return json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))


@dataclass(frozen=True)
class Metric:
    log_group: str  # the template resource of the log group
    pattern: str  # a CloudWatch Logs filter pattern over the JSON lines
    meaning: str


# The service's structured lines (chalicelib/audit.py) and the access log.
METRICS = {
    "FailedLogins": Metric("APIHandlerLogs", '{ $.event = "login_failed" }',
                           "a wrong password, an unknown name, or a password route's wrong password"),
    "Lockouts": Metric("APIHandlerLogs",
                       f'{{ $.event = "login_failed" && $.failures >= {THRESHOLD} }}',
                       "a failure that starts (or lengthens) a username's backoff wait"),
    "LockedOutAttempts": Metric("APIHandlerLogs", '{ $.event = "login_backoff" }',
                                "an attempt refused with 429 while its username waits"),
    "AuthorizerErrors": Metric("TokenAuthorizerLogs", '{ $.event = "authorizer_error" }',
                               "the authorizer could not decide: the caller got a 503"),
    "UnhandledErrors": Metric("APIHandlerLogs",
                              '{ $.event = "unhandled_error" || $.event = "table_not_found" }',
                              "a bug or a broken deployment: the caller got a 500"),
    "ServerErrors": Metric("APIHandlerLogs", '{ $.event = "request" && $.status >= 500 }',
                           "any 5xx the API handler answered (500 bugs, 503 outages)"),
    "Throttles": Metric("AccessLogs", '{ $.responseType = "THROTTLED" }',
                        "a request the stage's throttling refused with 429"),
    "MailNotSent": Metric("MailerLogs", '{ $.event = "email_not_sent" }',
                          "SES refused a message the mailer sent"),
}


@dataclass(frozen=True)
class Alarm:
    threshold: float
    why: str
    period: int = 300


# On the metrics above: at least ``threshold`` in one period. Normal traffic
# has a few failed logins, so those thresholds are rates of an attack, not
# of typos; every authorizer error or unhandled error is worth a look.
ALARMS = {
    "FailedLogins": Alarm(50, "credential stuffing, or a client retrying a wrong password"),
    "Lockouts": Alarm(10, "several usernames are being guessed at"),
    "AuthorizerErrors": Alarm(1, "authentication is failing: storage or the secret"),
    "UnhandledErrors": Alarm(1, "a bug or a broken deployment"),
    "Throttles": Alarm(10, "the stage's limits refuse clients; raise them or find the source"),
    # A refused sender refuses every message, and nobody who asked for a
    # link can tell: one is worth a look.
    "MailNotSent": Alarm(1, "check the sender's identity, the SES sandbox and the sending quota"),
}
# API Gateway's own 5XXError, as a share of its Count: 5 errors or more AND
# over 1 % of the requests of 5 minutes. A rate alone would fire on the
# one error of a quiet night; a count alone would never fire in proportion.
API_5XX_MIN_ERRORS = 5
API_5XX_RATE = 0.01


def parameters():
    return {
        "CreateApiGatewayAccount": {
            "Type": "String", "AllowedValues": ["true", "false"], "Default": "false",
            "Description": "Create the account's API Gateway CloudWatch role (one per account and "
                           "region; access logs need it). Leave false when "
                           "`aws apigateway get-account` already shows a cloudwatchRoleArn."},
        "AlarmTopicArn": {
            "Type": "String", "Default": "",
            "Description": "An SNS topic ARN for the alarms' notifications (empty: none)."},
    }


def conditions():
    return {
        "CreatingApiGatewayAccount": {"Fn::Equals": [{"Ref": "CreateApiGatewayAccount"}, "true"]},
        "NotifyingATopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]},
    }


def namespace(stage):
    return f"{SERVICE_NAME}/{stage}"


def access_logs(stage):
    """The access log group and the stage's AccessLogSetting."""
    group = {"Type": "AWS::Logs::LogGroup",
             "Properties": {"LogGroupName": f"/aws/apigateway/{SERVICE_NAME}-{stage}-access",
                            "RetentionInDays": LOG_RETENTION_DAYS}}
    setting = {
        # The group's ARN without GetAtt's trailing ":*", which API Gateway refuses.
        "DestinationArn": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:"
                                      "${AWS::AccountId}:log-group:${AccessLogs}"},
        "Format": access_log_format(),
    }
    return {"AccessLogs": group}, setting


def account_resources():
    """The account's API Gateway CloudWatch role, when the parameter asks for it.

    Retained when the stack goes: the setting is the account's, and other
    APIs of the account may log through it; deleting the role would silently
    break their logs.
    """
    retained = {"Condition": "CreatingApiGatewayAccount", "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain"}
    return {
        "ApiGatewayCloudWatchRole": {
            "Type": "AWS::IAM::Role", **retained,
            "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]},
                "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/"
                                                  "service-role/AmazonAPIGatewayPushToCloudWatchLogs"}],
            },
        },
        "ApiGatewayAccount": {
            "Type": "AWS::ApiGateway::Account", **retained,
            "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}},
        },
        # The stage refuses an access log setting until the account has its
        # role, so the API waits for this handle, which waits for the
        # account setting when the stack creates it (a DependsOn cannot name
        # a resource that may not exist).
        "ApiGatewayAccountReady": {
            "Type": "AWS::CloudFormation::WaitConditionHandle",
            "Metadata": {"Account": {"Fn::If": ["CreatingApiGatewayAccount",
                                                {"Ref": "ApiGatewayAccount"}, "assumed"]}},
        },
    }


def metric_filters(stage):
    return {f"{name}Metric": {
        "Type": "AWS::Logs::MetricFilter",
        "Properties": {
            "LogGroupName": {"Ref": metric.log_group},
            "FilterPattern": metric.pattern,
            "MetricTransformations": [{"MetricNamespace": namespace(stage), "MetricName": name,
                                       "MetricValue": "1", "Unit": "Count"}],
        },
    } for name, metric in METRICS.items()}


def _notify():
    topic = {"Fn::If": ["NotifyingATopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    return {"AlarmActions": topic, "OKActions": topic}


def _alarm(stage, name, description, **properties):
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": f"{SERVICE_NAME}-{stage}-{name}",
        "AlarmDescription": description,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        # No line, no request: nothing is wrong.
        "TreatMissingData": "notBreaching",
        **_notify(), **properties}}


def alarms(stage, api_name):
    found = {}
    for name, alarm in ALARMS.items():
        found[f"{name}Alarm"] = _alarm(
            stage, name, f"{METRICS[name].meaning}: {alarm.why}",
            Namespace=namespace(stage), MetricName=name, Statistic="Sum",
            Period=alarm.period, Threshold=alarm.threshold)
    for function in ("TokenAuthorizer", "APIHandler"):
        # Lambda refused to run the function: its reserved concurrency (or
        # the account's) is exhausted. For the authorizer, that is a 503.
        found[f"{function}ThrottlesAlarm"] = _alarm(
            stage, f"{function}Throttles", "Lambda throttled the function: raise its "
            "reserved concurrency or find the flood",
            Namespace="AWS/Lambda", MetricName="Throttles", Statistic="Sum", Period=60,
            Threshold=1, Dimensions=[{"Name": "FunctionName", "Value": {"Ref": function}}])

    # The mailer's invocation failed (DynamoDB unavailable, or a bug): its
    # batch is tried again, halved, then its failing item skipped.
    found["MailerErrorsAlarm"] = _alarm(
        stage, "MailerErrors", "a batch of mail failed; its items are retried, then skipped",
        Namespace="AWS/Lambda", MetricName="Errors", Statistic="Sum", Period=300, Threshold=1,
        Dimensions=[{"Name": "FunctionName", "Value": {"Ref": "Mailer"}}])

    def api_metric(key, metric_name):
        return {"Id": key, "ReturnData": False, "MetricStat": {
            "Metric": {"Namespace": "AWS/ApiGateway", "MetricName": metric_name,
                       "Dimensions": [{"Name": "ApiName", "Value": api_name},
                                      {"Name": "Stage", "Value": stage}]},
            "Period": 300, "Stat": "Sum"}}
    found["Api5xxRateAlarm"] = _alarm(
        stage, "Api5xxRate", f"over {API_5XX_RATE:.0%} of requests answered 5xx by API Gateway "
        "(authorizer failures, Lambda errors and throttles, timeouts)",
        Threshold=API_5XX_RATE, ComparisonOperator="GreaterThanThreshold",
        Metrics=[api_metric("errors", "5XXError"), api_metric("requests", "Count"),
                 {"Id": "rate", "ReturnData": True, "Label": "5xx share",
                  "Expression": f"IF(errors >= {API_5XX_MIN_ERRORS}, errors / requests, 0)"}])
    return found
