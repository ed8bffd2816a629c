"""`bench.handshake_floor.handshakes`: the count of handshakes in `openssl s_time`'s output."""

from __future__ import annotations

import pytest

from bench.handshake_floor import handshakes

# openssl s_time -new (OpenSSL 3.0.19), as it prints a run.
OUTPUT = """Collecting connection statistics for 5 seconds
*******************************************************************************

2012 connections in 2.63s; 765.02 connections/user sec, bytes read 0
2012 connections in 6 real seconds, 0 bytes read per connection
"""


def test_the_count_is_the_first_summary_line() -> None:
    assert handshakes(OUTPUT) == 2012


def test_output_without_a_count_is_an_error_that_shows_it() -> None:
    with pytest.raises(ValueError, match="unable to load client certificate"):
        handshakes("unable to load client certificate\n")


def test_no_handshake_completed_is_an_error_not_a_division_by_zero() -> None:
    with pytest.raises(ValueError, match="no handshake"):
        handshakes("0 connections in 0.00s; 0.00 connections/user sec, bytes read 0\n")
