"""What `make run` serves: chalice's local server answering like API Gateway,
and the embedded DynamoDB behind it. Never part of the Lambda package."""
