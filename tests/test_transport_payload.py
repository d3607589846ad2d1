"""Size caps and the gzip completeness check shared by both transports."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gotop.sources.errors import AnswerInflatesTooLarge, ResponseTooLarge
from gotop.sources.payload import CappedBuffer, gzip_problem, max_inflated

SAMPLE = (Path(__file__).resolve().parent / "samples" / "pprof-heap.pb.gz").read_bytes()


def test_real_profile_is_complete():
    assert gzip_problem("t:1", SAMPLE, "heap") is None


@given(st.integers(min_value=0, max_value=len(SAMPLE) - 1))
def test_every_truncation_of_a_real_profile_is_caught(cut):
    assert gzip_problem("t:1", SAMPLE[:cut], "heap") is not None


def test_trailing_bytes_are_caught():
    assert gzip_problem("t:1", SAMPLE + b"junk", "heap") == "4 unexpected bytes after the gzip stream"


def test_gzip_bomb_stops_at_the_cap_of_its_kind():
    """A stream inflating past its kind's cap is an answer too large to take
    (a ResponseTooLarge, which the poller backs off from), not a malformed one."""
    assert max_inflated("threadcreate") == 16 << 20 < max_inflated("goroutine") < max_inflated("heap")
    bomb = gzip.compress(b"\0" * (17 << 20))  # 17 MiB of zeros in ~17 KiB
    assert gzip_problem("t:1", bomb, "goroutine") is None
    with pytest.raises(AnswerInflatesTooLarge) as caught:
        gzip_problem("t:1", bomb, "threadcreate")
    assert isinstance(caught.value, ResponseTooLarge)
    assert str(caught.value) == "t:1: the threadcreate profile inflates beyond 16 MiB: refused"


def test_corrupt_deflate_data():
    corrupt = SAMPLE[:10] + bytes(b ^ 0xFF for b in SAMPLE[10:40]) + SAMPLE[40:]
    assert gzip_problem("t:1", corrupt, "heap").startswith("corrupt gzip data")


def test_raw_zlib_is_not_gzip():
    assert gzip_problem("t:1", zlib.compress(b"x"), "heap").startswith("not gzip data")


def test_capped_buffer_accepts_exactly_the_limit():
    buffer = CappedBuffer("t:1", 10)
    buffer.add(b"12345")
    buffer.add(b"67890")
    assert buffer.getvalue() == b"1234567890"
    with pytest.raises(ResponseTooLarge, match="^t:1: answer larger than 10 bytes: aborted$"):
        buffer.add(b"x")
    assert len(buffer) == 10
