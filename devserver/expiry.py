"""Expiry by TTL, as DynamoDB does it, for the embedded DynamoDB.

DynamoDB deletes an item once the number in its table's TTL attribute (epoch
seconds) is less than the current time, usually within days; moto never
does, so a long-running `make run` would keep every expired token and event.
An attribute that is not a number, or missing, never expires its item, and,
as in DynamoDB, neither does one more than five years in the past (the
attribute is then taken to hold something other than an expiry).
"""
FIVE_YEARS_SECONDS = 5 * 365 * 24 * 3600


def expire(backends, now):
    """Delete every expired item of every table with TTL enabled in ``backends``
    (moto's dynamodb_backends); returns how many were deleted."""
    deleted = 0
    for account in list(backends.values()):
        for backend in list(account.values()):
            for table in list(backend.tables.values()):
                deleted += _expire_table(table, now)
    return deleted


def _expire_table(table, now):
    if table.ttl.get("TimeToLiveStatus") != "ENABLED" or not table.ttl.get("AttributeName"):
        return 0
    name = table.ttl["AttributeName"]
    items = (table.items.values() if table.range_key_attr is None else
             (item for items in table.items.values() for item in items.values()))
    doomed = [item for item in items if _expired(item.attrs.get(name), now)]
    for item in doomed:
        table.delete_item(item.hash_key, item.range_key)
        if item.range_key is not None and not table.items.get(item.hash_key, True):
            del table.items[item.hash_key]
    return len(doomed)


def _expired(value, now):
    if value is None or value.type != "N":
        return False
    try:
        expires = float(value.value)
    except ValueError:
        return False
    return now - FIVE_YEARS_SECONDS <= expires < now
