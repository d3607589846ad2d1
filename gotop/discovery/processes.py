"""Which Go processes run on this host, and how each can be reached.

A `Scanner` keeps what never changes for a process (is it Go, its build info,
name, owner) cached by (pid, create_time), and build info by binary identity,
so rescanning a host with a thousand processes costs one /proc/PID/stat read
per process. What can change (the agent's port file, listening sockets) is
re-checked each scan; a listening socket is probed over HTTP (pprof, expvar,
/metrics) once in its process's life, across gotop runs too (probecache.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psutil

from gotop.discovery.buildinfo import BuildInfoError, GoBuildInfo, read_build_info
from gotop.discovery.portfile import PortFileInvalid, config_dir, read_environ, read_port_file
from gotop.discovery.probecache import ProbeCache, ProcessKey
from gotop.discovery.probes import PROBE_TIMEOUT, HttpEndpoints, SocketProbe, combine, probe_sockets
from gotop.discovery.sockets import ListenSocket, listening_sockets, listening_table, netns_id, socket_inodes
from gotop.discovery.unixsockets import UnixListener, listening_unix_sockets, unix_listening_table
from gotop.errors import GotopError
from gotop.procstat import ProcStat, read_proc_stat
from gotop.sources.memory import memory_access
from gotop.textsafe import plain

# A port file older than its process belongs to an earlier process with the
# same pid. Process start times are known to about a second (boot time in
# /proc/stat is whole seconds), hence the slack.
_START_TIME_SLACK = 2.0


def _read_stat(pid: int) -> ProcStat | None:
    """None if the process is gone (or its stat unreadable): it is skipped."""
    try:
        return read_proc_stat(pid)
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Agent:
    """A gops agent that is really listening for this process."""

    port: int
    host: str  # where to dial it
    port_file: str  # as the target sees it
    reachable: bool  # False when it listens in another network namespace

    def to_json(self) -> dict:
        return {"port": self.port, "host": self.host, "port_file": self.port_file, "reachable": self.reachable}

    @classmethod
    def from_json(cls, data: dict) -> Agent:
        return cls(data["port"], data["host"], data["port_file"], data["reachable"])


@dataclass(frozen=True, slots=True)
class _Identity:
    """What never changes during a process's life."""

    key: ProcessKey
    create_time: float
    name: str
    exe: str
    uid: int
    username: str
    build: GoBuildInfo
    memory_note: str  # "" when its runtime can be read from its memory, else why not

    @property
    def pid(self) -> int:
        return self.key[0]


@dataclass(frozen=True)
class GoProcess:
    pid: int
    ppid: int
    name: str
    exe: str
    create_time: float
    uid: int
    username: str
    build: GoBuildInfo
    agent: Agent | None
    pprof: str | None
    expvar: str | None
    listening: tuple[ListenSocket, ...]
    other_netns: bool
    notes: tuple[str, ...]  # what could not be checked, and why
    memory_note: str = "not checked"  # why its runtime cannot be read from its memory; "" when it can
    metrics: str | None = None  # client_golang's Prometheus /metrics URL
    unix_listening: tuple[UnixListener, ...] = ()  # its listening UNIX stream sockets

    @property
    def go_version(self) -> str:
        return self.build.go_version

    @property
    def memory(self) -> bool:
        """Whether its runtime can be read from its memory (the memory source)."""
        return not self.memory_note

    def to_json(self) -> dict:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "name": self.name,
            "exe": self.exe,
            "user": self.username,
            "uid": self.uid,
            "create_time": self.create_time,
            "go_version": self.go_version or None,
            "agent": self.agent.to_json() if self.agent else None,
            "pprof": self.pprof,
            "expvar": self.expvar,
            "metrics": self.metrics,
            "memory": self.memory,
            "memory_note": self.memory_note or None,
            "netns": "other" if self.other_netns else "same",
            "listening": [{"host": s.host, "port": s.port} for s in self.listening],
            "unix_sockets": [s.path for s in self.unix_listening],
            "build": self.build.to_json(),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict) -> GoProcess:
        """The inverse of to_json (for recordings); listening sockets keep no inode, UNIX ones no dial path."""
        return cls(
            pid=data["pid"], ppid=data["ppid"], name=data["name"], exe=data["exe"],
            create_time=data["create_time"], uid=data.get("uid", -1), username=data["user"],
            build=GoBuildInfo.from_json(data["build"]),
            agent=Agent.from_json(data["agent"]) if data.get("agent") else None,
            pprof=data.get("pprof"), expvar=data.get("expvar"),
            listening=tuple(ListenSocket(s["host"], s["port"], 0) for s in data.get("listening", ())),
            other_netns=data.get("netns") == "other", notes=tuple(data.get("notes", ())),
            memory_note=data.get("memory_note") or ("" if data.get("memory") else "not read from memory"),
            metrics=data.get("metrics"),
            unix_listening=tuple(UnixListener(path, 0) for path in data.get("unix_sockets", ())),
        )


@dataclass(frozen=True, slots=True)
class Skipped:
    """A process that could not be inspected, and why."""

    pid: int
    name: str
    reason: str


@dataclass(frozen=True)
class ScanResult:
    processes: tuple[GoProcess, ...]
    skipped: tuple[Skipped, ...] = ()


class NotAGoProcess(GotopError):
    pass


@dataclass
class _Endpoints:
    """Per-scan working state of one Go process's reachability."""

    identity: _Identity
    ppid: int
    netns: int | None
    other_netns: bool
    listening: tuple[ListenSocket, ...] = ()
    unix_listening: tuple[UnixListener, ...] = ()
    agent: Agent | None = None
    http: HttpEndpoints = HttpEndpoints()
    notes: list[str] = field(default_factory=list)


class Scanner:
    def __init__(self, probe_timeout: float = PROBE_TIMEOUT) -> None:
        self.probe_timeout = probe_timeout
        self._identities: dict[ProcessKey, _Identity | Skipped | None] = {}  # None: not Go
        self._binaries: dict[tuple[int, int, int, int], GoBuildInfo | None] = {}
        self._probes = ProbeCache()  # what each listening socket serves
        # Where each process's gops agent writes its port file: its initial environment says, read
        # once (re-read at each rescan of 100 processes: 7 % of the worker threads' busy samples, py-spy).
        self._gops_dirs: dict[ProcessKey, str | None] = {}
        self._own_netns = netns_id("self")

    def scan(self) -> ScanResult:
        """Every Go process on the host, by pid."""
        found: list[_Endpoints] = []
        skipped: list[Skipped] = []
        alive: set[ProcessKey] = set()
        for pid in psutil.pids():
            stat = _read_stat(pid)
            if stat is None:  # gone mid-scan
                continue
            key = (pid, stat.start_ticks)
            alive.add(key)
            identity = self._identity(key)
            if isinstance(identity, _Identity):
                found.append(self._endpoints_of(identity, stat.ppid))
            elif isinstance(identity, Skipped):
                skipped.append(identity)
        self._forget_all_but(alive)
        return ScanResult(self._resolve(found), tuple(skipped))

    def inspect(self, pid: int) -> GoProcess:
        """One process; raises GotopError if it is gone or not Go."""
        stat = _read_stat(pid)
        if stat is None:
            raise GotopError(f"no process with pid {pid}")
        identity = self._identity((pid, stat.start_ticks))
        if isinstance(identity, Skipped):
            raise GotopError(f"pid {pid} ({identity.name}): {identity.reason}")
        if identity is None:
            raise NotAGoProcess(f"pid {pid} is not a Go process")
        return self._resolve([self._endpoints_of(identity, stat.ppid)])[0]

    # -- what never changes -------------------------------------------------

    def _identity(self, key: ProcessKey) -> _Identity | Skipped | None:
        if key not in self._identities:
            self._identities[key] = self._classify(key)
        return self._identities[key]

    def _classify(self, key: ProcessKey) -> _Identity | Skipped | None:
        pid = key[0]
        exe_link = f"/proc/{pid}/exe"
        try:
            st = os.stat(exe_link)  # follows to the binary, even a deleted one
            binary = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if binary not in self._binaries:
                self._binaries[binary] = read_build_info(exe_link)
            build = self._binaries[binary]
        except PermissionError:
            stat = _read_stat(pid)
            if stat is None or stat.kernel_thread:  # gone, or no binary at all (unreadable without capabilities)
                return None
            return Skipped(pid, _name(pid), "permission denied reading /proc/PID/exe")
        except BuildInfoError as e:
            return Skipped(pid, _name(pid), f"corrupt Go build info: {e}")
        except OSError:  # kernel thread, zombie, or gone
            return None
        if build is None:
            return None
        try:
            proc = psutil.Process(pid)
            uid = proc.uids().effective
            identity = _Identity(key, proc.create_time(), proc.name(), _exe(pid), uid, _username(proc, uid), build,
                                 memory_access(pid, build.go_version) or "")
        except psutil.AccessDenied:
            return Skipped(pid, _name(pid), "permission denied reading /proc/PID/status")
        except psutil.NoSuchProcess:
            return None
        return identity

    def _forget_all_but(self, alive: set[ProcessKey]) -> None:
        for key in self._identities.keys() - alive:
            del self._identities[key]
        for key in self._gops_dirs.keys() - alive:
            del self._gops_dirs[key]
        self._probes.forget_all_but(alive)

    # -- what may change: agent and endpoints --------------------------------

    def _endpoints_of(self, identity: _Identity, ppid: int) -> _Endpoints:
        ns = netns_id(identity.pid)
        return _Endpoints(identity, ppid, ns, other_netns=ns is not None and ns != self._own_netns)

    def _resolve(self, found: list[_Endpoints]) -> tuple[GoProcess, ...]:
        tables: dict[int | None, _Tables] = {}
        with_http: list[_Endpoints] = []  # processes with sockets that may serve HTTP
        to_probe: dict[tuple[ProcessKey, _Socket], SocketProbe | None] = {}  # with an earlier finding
        for ep in found:
            self._find_sockets_and_agent(ep, tables)
            _note_unreachable(ep)
            http_sockets = _http_sockets(ep)
            if http_sockets:
                with_http.append(ep)
                key = ep.identity.key
                for s in http_sockets:
                    earlier = self._probes.get(key, s)
                    if earlier is None or not earlier.metrics_asked:
                        to_probe[key, s] = earlier
        probed: dict[tuple[ProcessKey, _Socket], SocketProbe] = {}  # this scan's findings, lasting or not
        if to_probe:
            argv0 = {key: _argv0(key[0]) for key, _ in to_probe}
            jobs = [(sock, argv0[key], earlier) for (key, sock), earlier in to_probe.items()]
            probed = dict(zip(to_probe, probe_sockets(jobs, self.probe_timeout)))
            for (key, sock), finding in probed.items():
                self._probes.put(key, sock, finding)
            self._probes.save()
        for ep in with_http:
            key = ep.identity.key
            known = [(s, probed.get((key, s)) or self._probes.get(key, s)) for s in _http_sockets(ep)]
            ep.http = combine(probe.endpoints for _, probe in known if probe is not None)
            ep.notes.extend(f"{_named(s)}: {probe.problem}: not probed"
                            for s, probe in known if probe is not None and probe.problem)
        return tuple(_go_process(ep) for ep in found)

    def _find_sockets_and_agent(self, ep: _Endpoints, tables: dict[int | None, _Tables]) -> None:
        pid = ep.identity.pid
        if ep.netns not in tables:
            tables[ep.netns] = _Tables(listening_table(pid), unix_listening_table(pid))
        table = tables[ep.netns]
        try:
            owned = socket_inodes(pid)
            ep.listening = listening_sockets(pid, table.tcp, owned)
            ep.unix_listening = listening_unix_sockets(pid, table.unix, owned)
        except PermissionError:
            ep.notes.append("sockets not readable (permission denied): agent and endpoints unknown")
            return
        except OSError:
            return  # exited
        ep.agent = self._find_agent(ep)

    def _find_agent(self, ep: _Endpoints) -> Agent | None:
        ident = ep.identity
        try:
            if ident.key not in self._gops_dirs:
                self._gops_dirs[ident.key] = config_dir(read_environ(ident.pid), ident.uid)
            directory = self._gops_dirs[ident.key]
            port_file = read_port_file(ident.pid, directory, ident.uid) if directory else None
        except PortFileInvalid as e:
            ep.notes.append(f"ignored gops port file {e}")
            return None
        except PermissionError:
            ep.notes.append("environment or root not readable (permission denied): agent unknown")
            return None
        except OSError:
            return None
        if port_file is None:
            return None
        if port_file.mtime < ident.create_time - _START_TIME_SLACK:
            ep.notes.append(f"stale gops port file {port_file.path}: older than the process")
            return None
        sock = next((s for s in ep.listening if s.port == port_file.port), None)
        if sock is None:
            ep.notes.append(f"stale gops port file {port_file.path}: nothing listens on port {port_file.port}")
            return None
        return Agent(port_file.port, sock.dial_hosts()[0], port_file.path, reachable=not ep.other_netns)


_Socket = ListenSocket | UnixListener


@dataclass(frozen=True, slots=True)
class _Tables:
    """The listening sockets of one network namespace, by inode."""

    tcp: dict[int, ListenSocket]
    unix: dict[int, UnixListener]


def _http_sockets(ep: _Endpoints) -> tuple[_Socket, ...]:
    """The listening sockets gotop can ask whether they serve HTTP: TCP ones of
    its own network namespace but the gops agent's, and UNIX ones it can dial
    (a path in any namespace: the filesystem reaches it)."""
    tcp = () if ep.other_netns else tuple(s for s in ep.listening if not ep.agent or s.port != ep.agent.port)
    return tcp + tuple(s for s in ep.unix_listening if s.dial)


def _named(sock: _Socket) -> str:
    return f"UNIX socket {plain(sock.path)}" if isinstance(sock, UnixListener) else f"port {sock.port}"


def _note_unreachable(ep: _Endpoints) -> None:
    """Say which listening sockets of another network namespace gotop cannot dial."""
    if not ep.other_netns:
        return
    ports = [str(s.port) for s in ep.listening if not ep.agent or s.port != ep.agent.port]
    if ports:
        ep.notes.append(f"listens on {', '.join(ports)} in another network namespace: not probed")
    if abstract := [plain(s.path) for s in ep.unix_listening if not s.dial]:
        ep.notes.append(f"abstract UNIX sockets {', '.join(abstract)} in another network namespace: not probed")


def _argv0(pid: int) -> bytes:
    """The process's argv[0] as /proc shows it (b"" if unreadable): pprof's cmdline must name it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(1 << 16).split(b"\0", 1)[0]
    except OSError:
        return b""


def _go_process(ep: _Endpoints) -> GoProcess:
    ident = ep.identity
    return GoProcess(
        pid=ident.pid, ppid=ep.ppid, name=ident.name, exe=ident.exe,
        create_time=ident.create_time, uid=ident.uid, username=ident.username,
        build=ident.build, agent=ep.agent, pprof=ep.http.pprof, expvar=ep.http.expvar,
        listening=ep.listening, other_netns=ep.other_netns, notes=tuple(ep.notes), memory_note=ident.memory_note,
        metrics=ep.http.metrics, unix_listening=ep.unix_listening,
    )


def _name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"


def _exe(pid: int) -> str:
    """The binary's path; it ends in " (deleted)" when the file was removed or replaced."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _username(proc: psutil.Process, uid: int) -> str:
    try:
        return proc.username()
    except (psutil.Error, KeyError):
        return str(uid)
