"""The stand-in hash that an unknown user's login is checked against."""
import re
import time

import bcrypt

from chalicelib import passwords


def test_the_stand_in_hash_is_well_formed_of_the_configured_cost_and_matches_nothing(monkeypatch):
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    for _ in range(300):
        dummy = passwords._dummy_hash()
        assert re.fullmatch(rb"\$2b\$05\$[./A-Za-z0-9]{53}", dummy)
        # bcrypt refuses a salt whose spare bits are set ("Invalid salt"): a
        # raise here would be a 500 for unknown users only.
        assert bcrypt.checkpw(b"no such password", dummy) is False


def test_each_stand_in_hash_is_new():
    assert len({passwords._dummy_hash() for _ in range(50)}) == 50


def _fastest(check, runs=7):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        check()
        times.append(time.perf_counter() - started)
    return min(times)


def test_checking_the_stand_in_costs_what_checking_a_real_hash_costs(monkeypatch):
    # The fastest of several runs each: what the work costs, without the
    # noise of a shared machine. A cost high enough to dwarf the overhead.
    monkeypatch.setenv("BCRYPT_ROUNDS", "9")
    real = passwords.hash_password("a real password")
    unknown = _fastest(lambda: passwords.verify("a wrong password", None))
    wrong = _fastest(lambda: passwords.verify("a wrong password", real))
    assert 0.8 < unknown / wrong < 1.25, (unknown, wrong)
