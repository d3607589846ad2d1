"""Recordings: what gotop watched, kept in one SQLite file, replayed later.

Schema (format "gotop-recording", version 1); times are unix seconds:

  meta(key TEXT PRIMARY KEY, value TEXT)
      format, version, gotop_version, created, host, interval, slow_every
  targets(id INTEGER PRIMARY KEY, key TEXT, label TEXT, info TEXT)
      info: JSON {"process": gotop list --json's object or null, "pid",
      "transports": {"agent", "pprof", "expvar"}}
  samples(target, time, state, error, poll_seconds, <one column per figure>)
      the fast tier: memstats (Go's names in snake_case, without the pause
      rings), goroutines, os_threads, gomaxprocs, num_cpu, rss, cpu_percent,
      threads, open_fds, sources (JSON)
  gc_pauses(target, time, num, pause_ns, end_ns)   every GC pause recovered
  lost_pauses(target, time, count)                 GCs whose pause is unknown
  fds(target, time, file, tcp, udp, unix, pipe, other)
  stacks(target, id, frames)        each distinct goroutine stack once (zlib JSON)
  goroutines(target, time, kind, total, groups)
      kind "goroutine" or "goroutineleak"; groups: zlib JSON of
      [stack id, count, states, leaked, max wait, created by, labels]
  heaps(target, time, fetched, profile)  the heap profile as fetched (gzipped protobuf)
  events(target, time, kind, detail)               e.g. restart

Rows are committed as they come, in WAL mode: a recorder killed at any moment
leaves a file that opens with everything up to its last committed sample.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields

from gotop import __version__
from gotop.engine.history import HeapSnapshot, TargetState, Update
from gotop.discovery.processes import GoProcess
from gotop.engine.target import Sample, Target
from gotop.errors import GotopError
from gotop.model.goroutines import Frame, GoroutineGroup, GoroutineProfile, stack_key
from gotop.model.memstats import GcPause, MemStats, Stats
from gotop.model.profile import parse_profile
from gotop.sources.procfs import FD_KINDS, OsFigures

FORMAT = "gotop-recording"
VERSION = 1

MEMSTATS_COLUMNS = tuple(f.name for f in fields(MemStats) if f.name not in ("pause_ns", "pause_end"))
STATS_COLUMNS = tuple(f.name for f in fields(Stats))
OS_COLUMNS = ("rss", "cpu_percent", "threads", "open_fds")
_SAMPLE_COLUMNS = ("target", "time", "state", "error", "poll_seconds", "sources",
                   *MEMSTATS_COLUMNS, *STATS_COLUMNS, *OS_COLUMNS)

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE targets (id INTEGER PRIMARY KEY, key TEXT NOT NULL, label TEXT NOT NULL, info TEXT NOT NULL);
CREATE TABLE samples ({", ".join(_SAMPLE_COLUMNS)});
CREATE INDEX samples_by_time ON samples (time);
CREATE TABLE gc_pauses (target, time, num, pause_ns, end_ns);
CREATE TABLE lost_pauses (target, time, count);
CREATE TABLE fds (target, time, {", ".join(FD_KINDS)});
CREATE TABLE stacks (target, id, frames BLOB, PRIMARY KEY (target, id));
CREATE TABLE goroutines (target, time, kind, total, groups BLOB);
CREATE TABLE heaps (target, time, fetched, profile BLOB);
CREATE TABLE events (target, time, kind, detail);
"""


class RecordingError(GotopError):
    """A file that is not a readable gotop recording."""


@dataclass(frozen=True)
class RecordedTarget:
    id: int
    key: str
    label: str
    info: dict  # the process as `gotop list --json` shows it, plus its transports


def target_info(target: Target, process: GoProcess | None) -> dict:
    """What a recording keeps of a target: its process and its transports."""
    return {
        "process": process.to_json() if process else None,
        "transports": {"agent": bool(target.gops), "pprof": bool(target.http), "expvar": target.expvar},
        "pid": target.pid,
    }


class Recorder:
    """Writes updates of the watched targets into a new recording."""

    def __init__(self, path: str, *, interval: float, slow_every: float) -> None:
        try:
            # Created private: a recording holds heap profiles and command lines.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            raise RecordingError(f"{path} exists: choose a new file for the recording") from None
        except OSError as e:
            raise RecordingError(f"{path}: {e.strerror}") from None
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise RecordingError(f"{path}: cannot write a recording: {e}") from None
        self.path = path
        self._stacks: dict[int, dict[tuple[Frame, ...], int]] = {}
        self._write("INSERT INTO meta VALUES (?, ?)", *[(k, str(v)) for k, v in {
            "format": FORMAT, "version": VERSION, "gotop_version": __version__,
            "created": f"{time.time():.3f}", "host": socket.gethostname(),
            "interval": interval, "slow_every": slow_every,
        }.items()])

    def add_target(self, key: str, label: str, info: dict) -> int:
        cursor = self.db.execute("INSERT INTO targets (key, label, info) VALUES (?, ?, ?)",
                                 (key, label, json.dumps(info)))
        self._stacks[cursor.lastrowid] = {}
        return cursor.lastrowid

    def event(self, target: int, time: float, kind: str, detail: str = "") -> None:
        self._write("INSERT INTO events VALUES (?, ?, ?, ?)", (target, time, kind, detail))

    def record(self, target: int, update: Update) -> None:
        """One poll's outcome, committed at once."""
        t = update.time
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                f"INSERT INTO samples VALUES ({', '.join('?' * len(_SAMPLE_COLUMNS))})",
                (target, t, update.state.value, update.error, update.poll_seconds, *_sample_row(update.sample)),
            )
            self.db.executemany("INSERT INTO gc_pauses VALUES (?, ?, ?, ?, ?)",
                                [(target, t, p.num, p.pause_ns, p.end_ns) for p in update.gc_pauses])
            if update.lost_pauses:
                self.db.execute("INSERT INTO lost_pauses VALUES (?, ?, ?)", (target, t, update.lost_pauses))
            if update.fds is not None:
                self.db.execute(f"INSERT INTO fds VALUES (?, ?, {', '.join('?' * len(FD_KINDS))})",
                                (target, t, *(update.fds.get(k, 0) for k in FD_KINDS)))
            for profile in (update.goroutines, update.leaks):
                if profile is not None:
                    self._goroutines(target, t, profile)
            if update.heap is not None:
                self.db.execute("INSERT INTO heaps VALUES (?, ?, ?, ?)",
                                (target, t, update.heap.time, update.heap.raw))

    def close(self) -> None:
        self.db.close()

    def _goroutines(self, target: int, t: float, profile: GoroutineProfile) -> None:
        known = self._stacks[target]
        rows = []
        for g in profile.groups:
            if g.frames not in known:
                known[g.frames] = len(known)
                frames = [[f.function, f.file, f.line] for f in g.frames]
                self.db.execute("INSERT INTO stacks VALUES (?, ?, ?)",
                                (target, known[g.frames], _pack(frames)))
            rows.append([known[g.frames], g.count, dict(g.states), g.leaked, g.max_wait_minutes, g.created_by,
                         [[list(map(list, labels)), n] for labels, n in g.labels.items()]])
        self.db.execute("INSERT INTO goroutines VALUES (?, ?, ?, ?, ?)",
                        (target, t, profile.kind, profile.total, _pack(rows)))

    def _write(self, sql: str, *rows: tuple) -> None:
        with self.db:
            self.db.executemany(sql, rows)


def _sample_row(sample: Sample | None) -> tuple:
    if sample is None:
        return (None,) * (1 + len(MEMSTATS_COLUMNS) + len(STATS_COLUMNS) + len(OS_COLUMNS))
    m, st, os_ = sample.memstats, sample.stats, sample.os
    return (
        json.dumps(sample.sources),
        *(getattr(m, c) if m else None for c in MEMSTATS_COLUMNS),
        *(getattr(st, c) for c in STATS_COLUMNS),
        *(getattr(os_, c) if os_ else None for c in OS_COLUMNS),
    )


def _pack(data) -> bytes:
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 6)


def _unpack(blob: bytes):
    return json.loads(zlib.decompress(blob))


class Recording:
    """A recording opened for replay."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not os.path.isfile(path):
            raise RecordingError(f"{path}: no such recording")
        try:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            damage = self.db.execute("PRAGMA quick_check").fetchone()[0]
            self.meta = dict(self.db.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as e:
            raise RecordingError(f"{path}: not a gotop recording ({e})") from None
        if damage != "ok":
            raise RecordingError(f"{path}: damaged recording ({damage})")
        if self.meta.get("format") != FORMAT:
            raise RecordingError(f"{path}: not a gotop recording")
        if self.meta.get("version") != str(VERSION):
            raise RecordingError(
                f"{path}: recording format version {self.meta.get('version')} "
                f"(made by gotop {self.meta.get('gotop_version', '?')}); this gotop reads version {VERSION}")
        try:
            self.targets = [RecordedTarget(i, k, label, json.loads(info))
                            for i, k, label, info in self.db.execute("SELECT id, key, label, info FROM targets")]
            first, last = self.db.execute("SELECT min(time), max(time) FROM samples").fetchone()
        except (sqlite3.DatabaseError, ValueError) as e:
            raise RecordingError(f"{path}: damaged recording ({e})") from None
        if first is None:
            raise RecordingError(f"{path}: the recording holds no sample")
        self.start, self.end = float(first), float(last)
        self.interval = float(self.meta.get("interval", 1.0))

    def close(self) -> None:
        self.db.close()

    def updates(self, since: float = 0.0) -> Iterator[tuple[int, Update]]:
        """Every recorded update with time > since, in time order, as the poller made them."""
        try:
            yield from self._updates(since)
        except (sqlite3.DatabaseError, zlib.error, ValueError, KeyError, TypeError) as e:
            raise RecordingError(f"{self.path}: damaged recording ({e})") from None

    def events(self) -> list[tuple[int, float, str, str]]:
        return list(self.db.execute("SELECT target, time, kind, detail FROM events ORDER BY time"))

    def _updates(self, since: float) -> Iterator[tuple[int, Update]]:
        extras = self._extras(since)
        for row in self.db.execute(
            f"SELECT {', '.join(_SAMPLE_COLUMNS)} FROM samples WHERE time > ? ORDER BY time, rowid", (since,)
        ):
            target, t = row[0], row[1]
            extra = extras.get((target, t), {})
            yield target, Update(
                time=t, state=TargetState(row[2]), sample=_sample(row), error=row[3], poll_seconds=row[4],
                **extra,
            )

    def _extras(self, since: float) -> dict[tuple[int, float], dict]:
        """Everything recorded beside the samples, by (target, time)."""
        extras: dict[tuple[int, float], dict] = {}

        def slot(target: int, t: float) -> dict:
            return extras.setdefault((target, t), {})

        for target, t, num, pause, end in self.db.execute(
                "SELECT target, time, num, pause_ns, end_ns FROM gc_pauses WHERE time > ? ORDER BY num", (since,)):
            s = slot(target, t)
            s["gc_pauses"] = s.get("gc_pauses", ()) + (GcPause(num, pause, end),)
        for target, t, count in self.db.execute("SELECT * FROM lost_pauses WHERE time > ?", (since,)):
            slot(target, t)["lost_pauses"] = count
        for target, t, *counts in self.db.execute("SELECT * FROM fds WHERE time > ?", (since,)):
            slot(target, t)["fds"] = dict(zip(FD_KINDS, counts))
        stacks = self._stacks()
        for target, t, kind, total, groups in self.db.execute(
                "SELECT * FROM goroutines WHERE time > ?", (since,)):
            profile = _profile(kind, total, _unpack(groups), stacks[target])
            slot(target, t)["leaks" if kind == "goroutineleak" else "goroutines"] = profile
        for target, t, fetched, raw in self.db.execute("SELECT * FROM heaps WHERE time > ?", (since,)):
            slot(target, t)["heap"] = HeapSnapshot(fetched, raw, parse_profile(raw))
        return extras

    def _stacks(self) -> dict[int, dict[int, tuple[Frame, ...]]]:
        stacks: dict[int, dict[int, tuple[Frame, ...]]] = {t.id: {} for t in self.targets}
        for target, ident, blob in self.db.execute("SELECT target, id, frames FROM stacks"):
            stacks.setdefault(target, {})[ident] = tuple(Frame(f, file, line) for f, file, line in _unpack(blob))
        return stacks


def _sample(row: tuple) -> Sample | None:
    sources = row[5]
    if sources is None:
        return None
    values = row[6:]
    memstats_values = values[: len(MEMSTATS_COLUMNS)]
    stats_values = values[len(MEMSTATS_COLUMNS): len(MEMSTATS_COLUMNS) + len(STATS_COLUMNS)]
    os_values = values[len(MEMSTATS_COLUMNS) + len(STATS_COLUMNS):]
    memstats = None
    if any(v is not None for v in memstats_values):
        memstats = MemStats(**{c: _typed(c, v) for c, v in zip(MEMSTATS_COLUMNS, memstats_values)})
    os_figures = OsFigures(row[1], *os_values) if os_values[0] is not None else None
    return Sample(row[1], memstats, Stats(*stats_values), os_figures, json.loads(sources))


def _typed(column: str, value):
    """SQLite gives back 0/1 for booleans."""
    if column in ("enable_gc", "debug_gc") and value is not None:
        return bool(value)
    return value


def _profile(kind: str, total: int, rows: list, stacks: dict[int, tuple[Frame, ...]]) -> GoroutineProfile:
    groups = []
    for stack_id, count, states, leaked, max_wait, created_by, labels in rows:
        frames = stacks[stack_id]
        groups.append(GoroutineGroup(
            key=stack_key(frames), count=count, frames=frames, states=Counter(states), leaked=leaked,
            max_wait_minutes=max_wait, created_by=created_by,
            labels=Counter({tuple(map(tuple, lbl)): n for lbl, n in labels}),
        ))
    return GoroutineProfile(kind, total, tuple(groups), has_states=any(g.states for g in groups))
