"""How a user names a target on the command line.

Kept apart from the engine so `gotop --help` can show TARGET_HELP without
loading the transports.
"""

from __future__ import annotations

from dataclasses import dataclass

from gotop.errors import GotopError
from gotop.unixconnect import UNIX_PREFIX

# What `--source` may name: a target's figures are then read through that one alone.
SOURCES = ("memory", "agent", "pprof", "expvar", "metrics")
SOURCE_HELP = ("read through this source alone, to compare them: memory (the runtime read from outside), "
               "agent (gops), pprof (net/http/pprof), expvar, metrics (Prometheus /metrics)")


class TargetError(GotopError):
    """A target cannot be named, found, or asked for something it does not offer."""


TARGET_HELP = ("a PID, host:port of a gops agent, http://host:port of net/http/pprof, "
               "or unix:/path/to.sock (unix:@name: an abstract socket) of net/http/pprof on a UNIX socket")


@dataclass(frozen=True, slots=True)
class TargetSpec:
    text: str  # as the user wrote it
    pid: int | None = None
    agent: tuple[str, int] | None = None
    http_base: str | None = None
    unix: str | None = None  # "unix:/path/to.sock" or "unix:@name"


def parse_target(text: str) -> TargetSpec:
    """'1234' | 'host:port' | '[::1]:port' | 'http://host:port[/prefix]' | 'unix:/path' | 'unix:@name'."""
    spec = text.strip()
    if spec.isdigit() and spec.isascii():
        return TargetSpec(text, pid=int(spec))
    if spec.startswith(UNIX_PREFIX) and len(spec) > len(UNIX_PREFIX):
        return TargetSpec(text, unix=text)  # a socket's path is taken as given, spaces too
    if spec.startswith(("http://", "https://")):
        return TargetSpec(text, http_base=spec)
    host, sep, port = spec.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if sep and host and port.isdigit() and port.isascii() and 0 < int(port) < 65536:
        return TargetSpec(text, agent=(host, int(port)))
    raise TargetError(f"{text!r} is not a target: give {TARGET_HELP}")


def parse_gc_percent(text: str) -> int | None:
    """A GC percent as typed: an integer >= -1, or 'off' (None: the GC off)."""
    if text.strip().lower() == "off":
        return None
    try:
        value = int(text)
    except ValueError:
        raise TargetError(f"{text!r} is not a GC percent: give an integer or 'off'") from None
    if value < -1:
        raise TargetError(f"GC percent {value} is below -1 (use 'off' to turn the GC off)")
    return value
