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
import os
import pwd
import stat
import time

from gotop.discovery.probes import HttpEndpoints, SocketProbe, servers
from gotop.discovery.sockets import ListenSocket
from gotop.discovery.unixsockets import UnixListener
from gotop.procstat import read_proc_stat
from gotop.safefiles import read_regular, replace_private
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
        self.directory = directory if directory is not None else default_directory()
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
        data = _read_private(self.directory)
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
        _write_private(self.directory, json.dumps(doc, separators=(",", ":")).encode())


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


# -- a private directory and file --------------------------------------------------


def default_directory() -> str | None:
    """$XDG_RUNTIME_DIR/gotop, else the effective user's ~/.cache/gotop (from
    the password database, not $HOME: `sudo` may keep another user's)."""
    uid = os.geteuid()
    for base, name in ((os.environ.get("XDG_RUNTIME_DIR"), "gotop"),
                       (os.environ.get("XDG_CACHE_HOME"), "gotop"),
                       (_home(uid), os.path.join(".cache", "gotop"))):
        if base and os.path.isabs(base) and _owned_dir(base, uid):
            return os.path.join(base, name)
    return None


def _home(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return None


def _owned_dir(path: str, uid: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid


def _open_private_dir(directory: str, create: bool) -> int | None:
    """A descriptor of `directory` if it is ours and nobody else may write in it."""
    if create:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError:
            return None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        return None
    return fd


def _read_private(directory: str | None) -> bytes | None:
    """The file's bytes if it is a private regular file of ours within the cap."""
    dir_fd = _open_private_dir(directory, create=False) if directory else None
    if dir_fd is None:
        return None
    try:
        return read_regular(FILE_NAME, MAX_FILE_BYTES, dir_fd=dir_fd, private=True)
    except OSError:
        return None
    finally:
        os.close(dir_fd)


def _write_private(directory: str, data: bytes) -> None:
    """Replace the file atomically by a new one, mode 0600; on any failure, leave it."""
    dir_fd = _open_private_dir(directory, create=True)
    if dir_fd is None:
        return
    try:
        replace_private(FILE_NAME, data, dir_fd=dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
