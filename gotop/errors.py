"""Typed errors. Every error gotop reports to a user is a GotopError whose
message is one clear line; anything else escaping is a bug."""


class GotopError(Exception):
    """An expected failure with a one-line, user-facing message."""


def describe(error: BaseException) -> str:
    """One line for any error: a GotopError's own message, else its type and message
    (an unexpected error shown as such, never as a traceback)."""
    if isinstance(error, GotopError):
        return str(error)
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
