from __future__ import annotations

from types import SimpleNamespace

from agentdeck.core.daphne_backpressure import buffered_bytes, too_slow


def test_buffered_bytes_reads_twisteds_write_buffer():
    transport = SimpleNamespace(dataBuffer=b"x" * 100, offset=40, _tempDataLen=25)
    assert buffered_bytes(transport) == 85
    assert buffered_bytes(object()) == 0


def test_a_burst_is_tolerated_for_the_grace_period_then_closed(settings):
    settings.WS_MAX_BUFFER_BYTES = 1000
    settings.WS_SLOW_GRACE_SECONDS = 5
    protocol = SimpleNamespace()
    assert not too_slow(protocol, 500, now=0)
    assert not too_slow(protocol, 2000, now=1)  # over the limit: the clock starts
    assert not too_slow(protocol, 2000, now=5.9)
    assert not too_slow(protocol, 900, now=6)  # drained: the clock resets
    assert not too_slow(protocol, 2000, now=7)
    assert too_slow(protocol, 2000, now=12.5)  # behind for longer than the grace


def test_far_over_the_limit_closes_at_once(settings):
    settings.WS_MAX_BUFFER_BYTES = 1000
    assert too_slow(SimpleNamespace(), 8001, now=0)


def test_a_zero_limit_disables_the_check(settings):
    settings.WS_MAX_BUFFER_BYTES = 0
    assert not too_slow(SimpleNamespace(), 10**9, now=0)
