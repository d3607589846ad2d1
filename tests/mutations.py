"""Hypothesis strategies that damage real samples, for fuzzing the parsers."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st


@st.composite
def mutated(draw, sample: bytes) -> bytes:
    """`sample` cut, with spans deleted, duplicated or overwritten, or bytes flipped."""
    data = bytearray(sample)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "delete", "insert", "flip", "duplicate"]))
        if action == "cut":
            del data[where:]
        elif action == "delete":
            del data[where:where + draw(st.integers(1, 200))]
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=40)
                                     | st.sampled_from([b"\n", b"\r\n", b"\t", b": ", b" ", b"(", b"[", b"#"]))
        elif action == "flip" and where < len(data):
            data[where] ^= 1 << draw(st.integers(0, 7))
        else:
            span = data[where:where + draw(st.integers(1, 400))]
            data[where:where] = span
    return bytes(data)


@st.composite
def damaged_in(draw, base: bytes, regions: Sequence[tuple[int, int]], edits: st.SearchStrategy[bytes]) -> bytes:
    """`base` overwritten 1 to 6 times, each time by an edit drawn from `edits`, at a
    place inside one of `regions` ((start, length) pairs: the bytes a reader depends on)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        start, length = draw(st.sampled_from(regions))
        at = start + draw(st.integers(0, length - 1))
        patch = draw(edits)
        data[at:at + len(patch)] = patch
    return bytes(data)
