"""Go names shortened for narrow columns (the full name stays in titles and drill-downs)."""

from __future__ import annotations


def short_function(name: str) -> str:
    """'github.com/acme/api/handler.(*S).wait' -> 'handler.(*S).wait'."""
    return name.rpartition("/")[2]
