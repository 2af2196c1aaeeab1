"""Build, deployment and local-serving code: never part of the Lambda package
(Chalice ships only app.py and chalicelib/)."""
