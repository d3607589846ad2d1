"""Size caps and the gzip completeness check shared by both transports."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gotop.sources.errors import ResponseTooLarge
from gotop.sources.payload import CappedBuffer, gzip_problem

SAMPLE = (Path(__file__).resolve().parent / "samples" / "pprof-heap.pb.gz").read_bytes()


def test_real_profile_is_complete():
    assert gzip_problem(SAMPLE) is None


@given(st.integers(min_value=0, max_value=len(SAMPLE) - 1))
def test_every_truncation_of_a_real_profile_is_caught(cut):
    assert gzip_problem(SAMPLE[:cut]) is not None


def test_gzip_bomb_is_bounded():
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    assert gzip_problem(bomb, max_inflated=8 << 20) == "gzip data inflates to more than 8 MiB"


def test_corrupt_deflate_data():
    corrupt = SAMPLE[:10] + bytes(b ^ 0xFF for b in SAMPLE[10:40]) + SAMPLE[40:]
    assert gzip_problem(corrupt).startswith("corrupt gzip data")


def test_raw_zlib_is_not_gzip():
    assert gzip_problem(zlib.compress(b"x")).startswith("not gzip data")


def test_capped_buffer_accepts_exactly_the_limit():
    buffer = CappedBuffer("t:1", 10)
    buffer.add(b"12345")
    buffer.add(b"67890")
    assert buffer.getvalue() == b"1234567890"
    with pytest.raises(ResponseTooLarge, match="^t:1: answer larger than 10 bytes: aborted$"):
        buffer.add(b"x")
    assert len(buffer) == 10
