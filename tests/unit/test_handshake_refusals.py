"""Refused TLS handshakes: the reason in a sentence, and the log rate-limited."""

from __future__ import annotations

import logging
import ssl

import pytest

from fleetsim.localcore.broker.handshake import UNKNOWN_CA, RefusalLog, refusal_reason


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    e = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    e.verify_code, e.verify_message, e.reason = code, message, "CERTIFICATE_VERIFY_FAILED"
    return e


def test_an_unknown_issuer_is_an_unknown_ca() -> None:
    reason = refusal_reason(verify_error(20, "unable to get local issuer certificate"))
    assert reason == f"{UNKNOWN_CA} (unable to get local issuer certificate)"


def test_other_verification_failures_say_what_failed() -> None:
    assert refusal_reason(verify_error(10, "certificate has expired")) == \
        "client certificate refused: certificate has expired"


def test_a_client_going_away_is_no_refusal() -> None:
    assert refusal_reason(ConnectionResetError()) is None
    assert refusal_reason(TimeoutError()) == "TLS handshake timed out"


def test_asyncios_handshake_timeout_is_a_timeout() -> None:
    slow = ConnectionAbortedError("SSL handshake is taking longer than 0.3 seconds: aborting "
                                  "the connection")
    assert refusal_reason(slow) == "TLS handshake timed out"


def test_refusals_beyond_the_limit_are_summed_up_in_the_next_window(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = RefusalLog(per_window=3, window=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "fleetsim.localcore.broker"):
        for n in range(5):
            refusals.note(f"10.0.0.1:{n}", UNKNOWN_CA)
        assert len(caplog.records) == 3
        now[0] = 10.0
        refusals.note("10.0.0.2:1", UNKNOWN_CA)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[3] == "2 more TLS handshakes refused in the last 10 s (not logged one by one)"
    assert lines[4] == f"TLS handshake from 10.0.0.2:1 refused: {UNKNOWN_CA}"
    assert refusals.refused == 6
