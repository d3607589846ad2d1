"""Errors shared by the transports (gops agent, HTTP pprof/expvar).

The engine turns these into a target state: Unreachable -> unreachable or
exited, TransportTimeout -> slow/busy, ProtocolError -> "not what we expected"
(wrong port, old or lying target). Each transport subclasses them with its own
name (AgentTimeout, HttpTimeout, ...), so callers may catch either level.
Every message is one line that names the target (host:port or URL).
"""

from __future__ import annotations

from gotop.errors import GotopError


class InvalidRequest(GotopError):
    """A request gotop cannot send as asked (bad base URL, name or value)."""


class TransportError(GotopError):
    """A request to a target failed; `target` is its host:port or URL."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"{target}: {detail}")
        self.target = target
        self.detail = detail


class Unreachable(TransportError):
    """No connection: refused, no route, or lost before an answer."""


class TransportTimeout(TransportError):
    """Connected, but the answer did not complete in time."""


class ProtocolError(TransportError):
    """Something answered, but not in the protocol we speak."""


class ResponseTooLarge(TransportError):
    """The answer exceeded the size cap; the connection was dropped. The engine
    backs off from a target that sends one, as from a failing one."""

    def __init__(self, target: str, limit: int, detail: str | None = None) -> None:
        super().__init__(target, detail or f"answer larger than {format_size(limit)}: aborted")
        self.limit = limit


class AnswerInflatesTooLarge(ResponseTooLarge):
    """A gzip answer inflates beyond the cap for its kind (a gzip bomb): refused unparsed."""

    def __init__(self, target: str, limit: int, what: str) -> None:
        super().__init__(target, limit, f"{what} inflates beyond {format_size(limit)}: refused")


def format_size(n: int) -> str:
    """Short human size for messages, e.g. '512 bytes', '64 MiB' (1024-based)."""
    if n < 1024:
        return f"{n} bytes"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):  # noqa: B007 - unit is read after the loop: the first that fits
        size /= 1024
        if size < 1024:
            break
    return f"{size:.4g} {unit}"
