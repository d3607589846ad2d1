"""Go names shortened for narrow columns (the full name stays in titles and drill-downs)."""

from __future__ import annotations


def short_function(name: str) -> str:
    """'github.com/acme/api/handler.(*S).wait' -> 'handler.(*S).wait'."""
    return name.rpartition("/")[2]


def short_label(label: str) -> str:
    """A goroutine group's label (GoroutineGroup.label) shortened the same way,
    'created by ...' kept."""
    created, by, name = label.partition("created by ")
    return f"{by}{short_function(name)}" if by and not created else short_function(label)
