"""What discovery's probes found, remembered for each process's lifetime, across gotop runs.

A probe is a request in another daemon's log; every `gotop list`, TUI start
and `check` used to send them again. A finding that holds while its socket
lives (see probes.SocketProbe.lasting) is kept in a small private file,
keyed by boot, pid, process start time and socket (address and port, or
"unix:" and a UNIX socket's path with port 0; and its inode): a
socket is asked once in its process's life, and a restarted process (a new
start time) or a new listener (a new inode) is asked again.

The file is `$XDG_RUNTIME_DIR/gotop/probes.json` (cleared at boot), else
`~/.cache/gotop/probes.json` of the effective user. It is read only if it is a
regular file of ours, mode 0600, in a directory of ours that nobody else may
write, and only what checks out is used: an entry can say at most that one of
the socket's own loopback URLs (or its own "unix:" name) serves pprof, expvar or /metrics, or that it
serves none. An entry written before /metrics was probed (seven fields, no
/metrics URL) is read as it was, with /metrics not asked yet. Anything else
(a corrupt, foreign or hostile file, another boot) is ignored and replaced. It
is written whole, atomically, with what other gotop runs added meanwhile, minus
the processes that have exited.
"""

from __future__ import annotations

import ipaddress
import json
import time

from gotop.discovery.probes import HttpEndpoints, SocketProbe, servers
from gotop.discovery.sockets import ListenSocket
from gotop.discovery.unixsockets import UnixListener
from gotop.procstat import read_proc_stat
from gotop.safefiles import gotop_directory, read_private, write_private
from gotop.unixconnect import UNIX_PREFIX

FORMAT = "gotop-probes"
VERSION = 1
FILE_NAME = "probes.json"
MAX_FILE_BYTES = 1 << 20
MAX_ENTRIES = 4096  # sockets; about 150 bytes each, well within MAX_FILE_BYTES
# Seconds a finding that does not last (a timeout) stands in this run before its socket is
# asked again: a real pprof slowed by a loaded host is found soon, and a listener that never
# answers HTTP is not probed at every rescan (each probe is a line in its log).
RETRY_AFTER = 60.0

ProcessKey = tuple[int, int]  # (pid, start time in clock ticks since boot): one process, even across pid reuse
_Key = tuple[int, int, str, int, int]  # pid, start, socket host, port, inode


class ProbeCache:
    """Probe findings by process and socket: in memory, and on disk when a
    private directory exists. A finding that does not last (a timeout) is kept in
    memory only, for RETRY_AFTER seconds: then its socket is asked again."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory if directory is not None else gotop_directory()
        self._found: dict[_Key, SocketProbe] = {}
        self._retry_at: dict[_Key, float] = {}  # findings that do not last: when to ask again
        self._loaded = False
        self._unsaved = False

    def get(self, process: ProcessKey, sock: ListenSocket | UnixListener) -> SocketProbe | None:
        if not self._loaded:
            self._loaded = True
            self._found.update(self._read())
        key = _key(process, sock)
        if key in self._retry_at and time.monotonic() >= self._retry_at[key]:
            del self._retry_at[key], self._found[key]
        return self._found.get(key)

    def put(self, process: ProcessKey, sock: ListenSocket | UnixListener, found: SocketProbe) -> None:
        key = _key(process, sock)
        self._found[key] = found
        if found.lasting:
            self._retry_at.pop(key, None)
            self._unsaved = True
        else:
            self._retry_at[key] = time.monotonic() + RETRY_AFTER

    def forget_all_but(self, alive: set[ProcessKey]) -> None:
        for key in [k for k in self._found if k[:2] not in alive]:
            del self._found[key]
            self._retry_at.pop(key, None)

    def save(self) -> None:
        """Write the findings of live processes, merged with the file's."""
        if not self._unsaved:
            return
        self._unsaved = False
        merged = self._read() | {k: v for k, v in self._found.items() if v.lasting}
        starts: dict[int, int | None] = {}
        live = [(k, v) for k, v in merged.items() if _alive(k[0], k[1], starts)][-MAX_ENTRIES:]
        self._write(live)

    # -- the file -------------------------------------------------------------

    def _read(self) -> dict[_Key, SocketProbe]:
        data = read_private(self.directory, FILE_NAME, MAX_FILE_BYTES)
        boot = _boot_id()
        try:
            doc = json.loads(data) if data is not None else None
        except (ValueError, RecursionError):
            return {}
        if not (isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("version") == VERSION
                and boot is not None and doc.get("boot") == boot and isinstance(doc.get("sockets"), list)):
            return {}
        found = {}
        for entry in doc["sockets"][:MAX_ENTRIES]:
            checked = _checked_entry(entry)
            if checked is not None:
                found[checked[0]] = checked[1]
        return found

    def _write(self, entries: list[tuple[_Key, SocketProbe]]) -> None:
        boot = _boot_id()
        if boot is None or self.directory is None:
            return
        doc = {"format": FORMAT, "version": VERSION, "boot": boot,
               "sockets": [[*key, *_urls(probe)] for key, probe in entries]}
        write_private(self.directory, FILE_NAME, json.dumps(doc, separators=(",", ":")).encode())


def _key(process: ProcessKey, sock: ListenSocket | UnixListener) -> _Key:
    if isinstance(sock, UnixListener):
        return (*process, UNIX_PREFIX + sock.path, 0, sock.inode)
    return (*process, sock.host, sock.port, sock.inode)


def _urls(probe: SocketProbe) -> list[str | None]:
    """An entry's last fields: pprof, expvar, and /metrics once asked."""
    found = probe.endpoints
    return [found.pprof, found.expvar, *([found.metrics] if probe.metrics_asked else [])]


def _checked_entry(entry: object) -> tuple[_Key, SocketProbe] | None:
    """One stored entry, if every field is what it must be."""
    if not (isinstance(entry, list) and len(entry) in (7, 8)):  # 7: written before /metrics was asked
        return None
    pid, start, host, port, inode, *stored = entry
    if not (all(type(n) is int and n >= 0 for n in (pid, start, inode)) and type(port) is int
            and isinstance(host, str)):
        return None
    if host.startswith(UNIX_PREFIX) and port == 0:
        sock: ListenSocket | UnixListener = UnixListener(host.removeprefix(UNIX_PREFIX), inode)
    elif 0 < port < 65536 and _is_address(host):
        sock = ListenSocket(host, port, inode)
    else:
        return None
    allowed = [server.urls() for server in servers(sock)]
    found = HttpEndpoints(*stored)
    for kind in ("pprof", "expvar", "metrics"):
        url = getattr(found, kind)
        if url is not None and url not in [getattr(urls, kind) for urls in allowed]:
            return None
    return (pid, start, host, port, inode), SocketProbe(found, lasting=True, metrics_asked=len(stored) == 3)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _alive(pid: int, start: int, starts: dict[int, int | None]) -> bool:
    if pid not in starts:
        try:
            starts[pid] = read_proc_stat(pid).start_ticks
        except (OSError, ValueError):
            starts[pid] = None
    return starts[pid] == start


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read(64).strip() or None
    except (OSError, ValueError):
        return None
