"""The stand-in hash that an unknown user's login is checked against."""
import re

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
