"""Typed errors. Every error gotop reports to a user is a GotopError whose
message is one clear line; anything else escaping is a bug."""


class GotopError(Exception):
    """An expected failure with a one-line, user-facing message."""
