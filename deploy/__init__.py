"""What builds the deployment: the merge template and its pieces, the
bytecode of the Lambda zip, the shipped common-password list.

Never part of the Lambda package: Chalice zips only app.py and chalicelib/,
and chalicelib/ holds only what the functions import.
"""
