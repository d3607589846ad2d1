"""Untrusted text (process names, cmdlines, stack text, answers) made safe to print or store.

A process can name itself anything, terminal escape sequences and bytes that
are not UTF-8 included (Python keeps those as lone surrogates, which no UTF-8
stream or SQLite column accepts). Before gotop prints or stores such text,
control characters (C0 and C1), invisible formatting characters and such bytes
become visible escapes, so the terminal shows them and never obeys them.
"""

from __future__ import annotations

import unicodedata


def plain(text: str, keep: str = "") -> str:
    """`text` with control (Cc) and format (Cf, e.g. bidi overrides) characters
    and undecodable bytes (Cs) escaped, except those in `keep` (e.g. "\t" for
    stack text)."""
    if text.isprintable():
        return text
    return "".join(
        _escape(ch) if unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in keep else ch for ch in text
    )


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain_lines(text: str) -> str:
    """Multi-line text (a stack dump, a listing) made safe line by line; tabs kept."""
    return "\n".join(plain(line, keep="\t") for line in text.split("\n"))
