"""The embedded DynamoDB's data, kept in one file between runs of `make run`.

    python -m devserver.kept_data reset      (what `make reset` runs)

The file holds every table of the embedded server: its keys, indexes, TTL
setting and every item, in DynamoDB's own JSON, so that it reads the same
whatever moto keeps in memory. It is written whole to a temporary file in
the same folder and then renamed over the old one, so a crash mid-write
leaves the previous file, never half of one. A file this code cannot read
is never overwritten: `make run` stops and names it, and `make reset` drops
it.

A `make run` serving on the file holds an exclusive lock on a file beside
it (the operating system drops the lock with the process, even after a
`kill -9`), so that a second `make run`, or `make reset`, cannot pull the
data from under it.
"""
import base64
import fcntl
import json
import os
import sys
import tempfile

FORMAT = "login-service embedded DynamoDB"
VERSION = 1


class Unusable(Exception):
    """The data file cannot be used; the message is one line that says what to do."""


def hold(path):
    """Take the lock of ``path``'s data for this process; returns what release() takes.

    Raises Unusable when another process holds it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    lock = open(path + ".lock", "a+", encoding="utf-8")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise Unusable(f"{path} is in use by make run (pid {holder}); stop it first (Ctrl-C "
                       f"in its terminal, or kill {holder})") from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def release(lock):
    lock.close()


def read(path):
    """The data saved in ``path``, or None when there is no file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise _unreadable(path, f"not JSON: {exc}") from None
    except OSError as exc:
        raise _unreadable(path, exc.strerror or exc) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _unreadable(path, "not a data file of the embedded DynamoDB")
    if data.get("version") != VERSION:
        raise _unreadable(path, f"written by another version (format {data.get('version')!r}, "
                                f"this one reads {VERSION})")
    return data


def _unreadable(path, cause):
    return Unusable(f"{path} cannot be read ({cause}); it is left as it is: `make reset` drops "
                    "it (every table and item it holds), or set LOCAL_DATA_DIR to start "
                    "elsewhere")


def write(path, data):
    """Replace ``path`` with ``data`` at once: the old file or the new, never a mix."""
    folder = os.path.dirname(path) or "."
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".dynamodb-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            # dumps, not dump: dump encodes in Python, chunk by chunk, 5
            # times slower, taking the interpreter from the requests.
            f.write(json.dumps(data, separators=(",", ":")))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def snapshot(backends):
    """Every table of moto's ``dynamodb_backends``, as read() returns it.

    Call it holding the embedded server's lock: it reads the items as they
    are, and an answer in between would tear it."""
    return {"format": FORMAT, "version": VERSION,
            "tables": [_table(account, region, table)
                       for account, regions in list(backends.items())
                       for region, backend in list(regions.items())
                       for table in backend.tables.values()]}


def _table(account, region, table):
    return {
        "account": account, "region": region, "name": table.name,
        "KeySchema": table.schema, "AttributeDefinitions": table.attr,
        "BillingMode": table.billing_mode,
        "ProvisionedThroughput": {k: table.throughput[k]
                                  for k in ("ReadCapacityUnits", "WriteCapacityUnits")},
        "GlobalSecondaryIndexes": [{"IndexName": i.name, "KeySchema": i.schema,
                                    "Projection": i.projection} for i in table.global_indexes],
        "LocalSecondaryIndexes": [i.describe() for i in table.indexes],
        "TimeToLive": dict(table.ttl),
        "items": [{name: _wire(value) for name, value in item.attrs.items()}
                  for item in _items(table)],
    }


def _items(table):
    """The table's items in the order they are kept (moto's all_items() sorts
    them, which cost 87% of a snapshot, all of it under the server's lock)."""
    if table.range_key_attr is None:
        return list(table.items.values())
    return [item for items in table.items.values() for item in items.values()]


def _wire(value):
    """A moto DynamoType as DynamoDB's JSON (binary as base64 text)."""
    if value.is_list():
        return {"L": [_wire(v) for v in value.value]}
    if value.is_map():
        return {"M": {k: _wire(v) for k, v in value.value.items()}}
    if value.type in ("B", "BS"):
        encode = (lambda b: base64.b64encode(b).decode() if isinstance(b, bytes) else b)
        return {value.type: (encode(value.value) if value.type == "B"
                             else [encode(b) for b in value.value])}
    return {value.type: value.value}


def restore(backends, path, data):
    """Put the tables of ``data`` (from read()) into moto's ``dynamodb_backends``,
    each replacing a table of that name (a new process has none). Call it
    holding the embedded server's lock, before it serves."""
    try:
        for saved in data["tables"]:
            backend = backends[saved["account"]][saved["region"]]
            backend.tables.pop(saved["name"], None)
            paid = saved["BillingMode"] == "PROVISIONED"
            table = backend.create_table(
                saved["name"], schema=saved["KeySchema"],
                throughput=saved["ProvisionedThroughput"] if paid else None,
                attr=saved["AttributeDefinitions"],
                global_indexes=saved["GlobalSecondaryIndexes"],
                indexes=saved["LocalSecondaryIndexes"], streams=None,
                billing_mode=saved["BillingMode"], sse_specification=None, tags=[],
                deletion_protection_enabled=False, warm_throughput=None)
            table.ttl = dict(saved["TimeToLive"])
            for item in saved["items"]:
                table.put_item(item, overwrite=True)
    except Exception as exc:  # noqa: BLE001 - whatever a bad file raises, it is one line
        raise _unreadable(path, f"{type(exc).__name__}: {exc}") from None


def reset(path):
    """Drop the data file at ``path`` unless a `make run` serves on it; returns
    the exit status, having said what it did in one line."""
    try:
        lock = hold(path)
    except Unusable as exc:
        print(f"make reset refused: {exc}", file=sys.stderr)
        return 1
    try:
        if not os.path.exists(path):
            print(f"nothing to drop: no {path}")
            return 0
        try:
            tables = read(path)["tables"]
            what = (f"{len(tables)} tables, {sum(len(t['items']) for t in tables)} items: "
                    + ", ".join(t["name"] for t in tables))
        except (Unusable, LookupError, TypeError):
            what = "unreadable"
        os.unlink(path)
        print(f"dropped {path} ({what}); the next make run starts with empty tables")
        return 0
    finally:
        release(lock)


if __name__ == "__main__":
    if sys.argv[1:] != ["reset"]:
        sys.exit("usage: python -m devserver.kept_data reset")
    from devserver import stage
    sys.exit(reset(stage.data_file()))
