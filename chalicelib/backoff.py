"""Failed-login backoff, per username (existing or not, any case).

After ``THRESHOLD`` consecutive failures, every attempt for the name, even
with the right password, is refused with 429 until a wait is over. The wait
doubles with each further failure, from 30 s up to 15 minutes and never
beyond, so an attacker can slow a victim's logins down but never lock the
account for good. A success resets the count; so does a day without
failures.

Each attempt is counted as a failure *before* its password is checked
(bcrypt takes long enough for a burst of requests to all read the same
count), and a success then resets the count. The fifth attempt sets the lock
as it is counted, so at most ``THRESHOLD`` passwords are checked before the
first wait and one per wait after it, however many attempts arrive at once.
"""
import math
from dataclasses import dataclass

THRESHOLD = 5
FIRST_WAIT = 30
MAX_WAIT = 900
MEMORY = 86400


@dataclass
class Attempts:
    failures: int = 0
    locked_until: float = 0
    expires_at: float = 0


def current(attempts, now):
    """The record as it counts now: a forgotten one counts as none."""
    if attempts is None or attempts.expires_at <= now:
        return Attempts()
    return attempts


def retry_after(attempts, now):
    """Whole seconds to wait before the next attempt, 0 when none."""
    wait = current(attempts, now).locked_until - now
    return min(MAX_WAIT, max(1, math.ceil(wait))) if wait > 0 else 0


def after_failure(attempts, now):
    """The record after one more failure (or one more attempt, reserved)."""
    failures = current(attempts, now).failures + 1
    wait = 0 if failures < THRESHOLD else min(MAX_WAIT, FIRST_WAIT * 2 ** (failures - THRESHOLD))
    # Whole seconds, rounded down: a Retry-After (rounded up) then never
    # exceeds the wait, and waiting that long always suffices.
    return Attempts(failures=failures, locked_until=math.floor(now) + wait if wait else 0,
                    expires_at=math.floor(now) + MEMORY)
