"""Untrusted text (process names, cmdlines, stack text) made safe to print.

A process can name itself anything, terminal escape sequences included. Before
gotop prints such text, control and invisible formatting characters become
visible escapes, so the terminal shows them and never obeys them.
"""

from __future__ import annotations

import unicodedata


def plain(text: str, keep: str = "") -> str:
    """`text` with control (Cc) and format (Cf, e.g. bidi overrides) characters
    escaped, except those in `keep` (e.g. "\t" for stack text)."""
    if text.isprintable():
        return text
    return "".join(
        _escape(ch) if unicodedata.category(ch) in ("Cc", "Cf") and ch not in keep else ch for ch in text
    )


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain_lines(text: str) -> str:
    """Multi-line text (a stack dump, a listing) made safe line by line; tabs kept."""
    return "\n".join(plain(line, keep="\t") for line in text.split("\n"))
