"""Hypothesis strategies that damage real samples, for fuzzing the parsers."""

from __future__ import annotations

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
