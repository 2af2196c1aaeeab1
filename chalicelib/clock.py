"""Time, in one patchable place, and the contract's ISO-8601 format."""
import time
from datetime import datetime, timezone


def now():
    """Seconds since the epoch, as a float."""
    return time.time()


def iso(epoch_seconds):
    """``2026-11-29T13:41:45Z``, with microseconds when there are any."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
