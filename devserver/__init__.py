"""What `make run` serves and supervises (serve.py): chalice's local server
answering like API Gateway, and the embedded DynamoDB behind it; stage.py is
shared with manage.py's operator commands. Never part of the Lambda package."""
