"""Recordings: what gotop watched, kept in one SQLite file, replayed later.

Schema (format "gotop-recording", version 1); times are unix seconds:

  meta(key TEXT PRIMARY KEY, value TEXT)
      format, version, gotop_version, created, host, interval, slow_every
  targets(id INTEGER PRIMARY KEY, key TEXT, label TEXT, info TEXT)
      info: JSON {"process": gotop list --json's object or null, "pid",
      "transports": {"agent", "pprof", "expvar", "memory", "metrics"}}
  polls(target, time, row)          the newest polls of a target, one JSON row each
  poll_chunks(target, first, last, rows)
      older polls, CHUNK_ROWS per blob: zlib JSON, column by column, integer
      columns as differences from the previous value (counters and clocks then
      cost a few bytes a poll). A row is ROW_FIELDS: time, state, error,
      poll_seconds, sampled (0 when the poll got no sample), lost_pauses,
      pauses ([num, pause ns, end ns] of every GC since the previous poll),
      sources (which transport gave what), then the figures: memstats (Go's
      names in snake_case, without the pause rings), goroutines, os_threads,
      gomaxprocs, num_cpu, rss, cpu_percent, threads, open_fds, and (since the memory
      source; absent from older rows) heap_marked, gc_percent, memory_limit.
  fds(target, time, file, tcp, udp, unix, pipe, other)
  stacks(target, id, frames)        each distinct goroutine stack once (zlib JSON)
  goroutines(target, time, kind, total, groups)
      kind "goroutine" or "goroutineleak"; groups: zlib JSON of
      [stack id, count, states, leaked, max wait, created by, labels]
  heaps(target, time, fetched, profile)  the heap profile as fetched (gzipped protobuf)
  events(target, time, kind, detail)               e.g. restart

Every poll is committed as it comes, in WAL mode, and moving a full chunk out of
`polls` is one transaction: a recorder killed at any moment leaves a file that
opens with everything up to its last committed poll (with its -wal file beside it).
Closing folds the log back into the file and returns to a rollback journal, so a
closed recording is one file, needing no side file to be read.

Replay opens a recording read-only, and immutable unless a write-ahead log lies
beside it (a recorder is writing it, or was killed): then nothing is ever created
beside the file, even for a WAL file in a place gotop cannot write, where a
read-only connection would otherwise fail or make -shm and -wal files.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gotop import __version__
from gotop.discovery.processes import GoProcess
from gotop.engine.history import HeapSnapshot, TargetState, Update
from gotop.engine.target import Sample, Target
from gotop.errors import GotopError
from gotop.model.goroutines import Frame, GoroutineGroup, GoroutineProfile, stack_key
from gotop.model.memstats import GcPause, MemStats, Stats
from gotop.model.profile import parse_profile
from gotop.sources.procfs import FD_KINDS, OsFigures

FORMAT = "gotop-recording"
VERSION = 1

# MemStats fields added after the first recordings: at the end of a row, so older rows read as they were.
LATER_MEMSTATS_COLUMNS = ("heap_marked", "gc_percent", "memory_limit")
MEMSTATS_COLUMNS = tuple(f.name for f in fields(MemStats)
                         if f.name not in ("pause_ns", "pause_end", *LATER_MEMSTATS_COLUMNS))
STATS_COLUMNS = tuple(f.name for f in fields(Stats))
OS_COLUMNS = ("rss", "cpu_percent", "threads", "open_fds")
FIGURES = ("sources", *MEMSTATS_COLUMNS, *STATS_COLUMNS, *OS_COLUMNS, *LATER_MEMSTATS_COLUMNS)
ROW_FIELDS = ("time", "state", "error", "poll_seconds", "sampled", "lost_pauses", "pauses", *FIGURES)
_PAUSES = ROW_FIELDS.index("pauses")
CHUNK_ROWS = 60

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE targets (id INTEGER PRIMARY KEY, key TEXT NOT NULL, label TEXT NOT NULL, info TEXT NOT NULL);
CREATE TABLE polls (target, time, row TEXT);
CREATE TABLE poll_chunks (target, first, last, rows BLOB);
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


def _target_info(target: Target, process: GoProcess | None) -> dict:
    """What a recording keeps of a target: its process and its transports."""
    return {
        "process": process.to_json() if process else None,
        "transports": {"agent": bool(target.gops), "pprof": bool(target.http), "expvar": target.expvar,
                       "memory": target.memory, "metrics": bool(target.metrics)},
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
            self.db.execute("PRAGMA auto_vacuum=FULL")  # polls moved into chunks give their pages back
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise RecordingError(f"{path}: cannot write a recording: {e}") from None
        self.path = path
        # Per target while it is watched (end_target lets go of it: a host's processes come and go).
        self._stacks: dict[int, dict[tuple[Frame, ...], int]] = {}
        self._pending: dict[int, list[list]] = {}  # per target: rows in `polls`, not yet in a chunk
        self._write("INSERT INTO meta VALUES (?, ?)", *[(k, str(v)) for k, v in {
            "format": FORMAT, "version": VERSION, "gotop_version": __version__,
            "created": f"{time.time():.3f}", "host": socket.gethostname(),
            "interval": interval, "slow_every": slow_every,
        }.items()])

    def add_target(self, key: str, label: str, target: Target, process: GoProcess | None) -> int:
        cursor = self.db.execute("INSERT INTO targets (key, label, info) VALUES (?, ?, ?)",
                                 (key, label, json.dumps(_target_info(target, process))))
        target_id = cursor.lastrowid
        assert target_id is not None  # set by every INSERT
        self._stacks[target_id] = {}
        return target_id

    def end_target(self, target: int) -> None:
        """The target is no longer watched: its last polls go into a chunk, and what
        the recorder kept of it is let go."""
        pending = self._pending.pop(target, None)
        self._stacks.pop(target, None)
        if pending:
            with self.db:
                self.db.execute("BEGIN")
                self._chunk(target, pending)

    def restart(self, target: int, time: float, new: Target, process: GoProcess) -> None:
        """The target's process was restarted: `new` watches the new one."""
        self._write("INSERT INTO events VALUES (?, ?, ?, ?)",
                    (target, time, "restart", json.dumps(_target_info(new, process))))

    def record(self, target: int, update: Update) -> None:
        """One poll's outcome, committed at once."""
        t = update.time
        with self.db:
            self.db.execute("BEGIN")
            row = _row(update)
            self.db.execute("INSERT INTO polls VALUES (?, ?, ?)", (target, t, _json(row)))
            pending = self._pending.setdefault(target, [])
            pending.append(row)
            if len(pending) == CHUNK_ROWS:
                self._chunk(target, pending)
                pending.clear()
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
        try:
            # Checkpoints the log into the file and deletes the -wal and -shm files.
            self.db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError:
            pass  # a replay is reading it now: it stays a valid WAL file, side files and all
        self.db.close()

    def _chunk(self, target: int, rows: list[list]) -> None:
        """Move a target's polls from `polls` into one compressed chunk (in a transaction)."""
        self.db.execute("INSERT INTO poll_chunks VALUES (?, ?, ?, ?)",
                        (target, rows[0][0], rows[-1][0], zlib.compress(_json(_columns(rows)).encode(), 9)))
        self.db.execute("DELETE FROM polls WHERE target = ?", (target,))

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


def _row(update: Update) -> list:
    sample = update.sample
    figures = _figures(sample) if sample else (None,) * len(FIGURES)
    pauses = [[p.num, p.pause_ns, p.end_ns] for p in update.gc_pauses]
    return [update.time, update.state.value, update.error, update.poll_seconds, sample is not None,
            update.lost_pauses, pauses, *figures]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _columns(rows: list[list]) -> list:
    """Rows to columns; integer columns become differences (None stays None)."""
    encoded = []
    for index, column in enumerate(zip(*rows)):
        if index == _PAUSES:
            flat = [value for pauses in column for pause in pauses for value in pause]
            encoded.append(["p", [len(p) for p in column], _deltas(flat[0::3]), flat[1::3], _deltas(flat[2::3])])
        elif all(_is_int(v) or v is None for v in column):
            encoded.append(["d", _deltas(column)])
        else:
            encoded.append(["v", list(column)])
    return encoded


def _rows(columns: list) -> list[list]:
    decoded: list[list] = []  # per column, its values
    for column in columns:
        kind = column[0]
        if kind == "p":
            counts, nums, pauses, ends = column[1], _sums(column[2]), column[3], _sums(column[4])
            triples = [list(t) for t in zip(nums, pauses, ends)]
            starts = [sum(counts[:i]) for i in range(len(counts))]
            decoded.append([triples[start:start + n] for start, n in zip(starts, counts)])
        elif kind == "d":
            decoded.append(_sums(column[1]))
        else:
            decoded.append(column[1])
    return [list(row) for row in zip(*decoded)]


def _deltas(values: Iterable[int | None]) -> list[int | None]:
    out: list[int | None] = []
    previous = 0
    for v in values:
        if v is None:
            out.append(None)
        else:
            out.append(v - previous)
            previous = v
    return out


def _sums(deltas: Iterable[int | None]) -> list[int | None]:
    out: list[int | None] = []
    previous = 0
    for d in deltas:
        if d is None:
            out.append(None)
        else:
            previous += d
            out.append(previous)
    return out


def _json(data) -> str:
    return json.dumps(data, separators=(",", ":"))


def _figures(sample: Sample) -> tuple:
    m, st, os_ = sample.memstats, sample.stats, sample.os
    return (
        sample.sources,
        *(getattr(m, c) if m else None for c in MEMSTATS_COLUMNS),
        *(getattr(st, c) for c in STATS_COLUMNS),
        *(getattr(os_, c) if os_ else None for c in OS_COLUMNS),
        *(getattr(m, c) if m else None for c in LATER_MEMSTATS_COLUMNS),
    )


def _pack(data) -> bytes:
    return zlib.compress(_json(data).encode(), 6)


def _unpack(blob: bytes):
    return json.loads(zlib.decompress(blob))


class Recording:
    """A recording opened for replay."""

    def __init__(self, path: str, *, immutable: bool = False) -> None:
        """immutable: read the file alone, even if a -wal file lies beside it (the
        bundled recording, where an old gotop may have left one)."""
        self.path = path
        if not os.path.isfile(path):
            raise RecordingError(f"{path}: no such recording")
        # Without a log beside it no recorder is writing the file (one in WAL mode
        # keeps its -wal file until it closes), so it cannot change under the replay.
        immutable = immutable or not os.path.exists(f"{path}-wal")
        uri = f"{Path(path).absolute().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        try:
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
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
            first, last = self.db.execute(
                "SELECT min(t), max(t) FROM (SELECT time AS t FROM polls UNION ALL SELECT first FROM poll_chunks"
                " UNION ALL SELECT last FROM poll_chunks)").fetchone()
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
        rows = [(target, row) for target, blob in self.db.execute("SELECT target, rows FROM poll_chunks")
                for row in _rows(json.loads(zlib.decompress(blob)))]
        rows += [(target, json.loads(row)) for target, row in self.db.execute("SELECT target, row FROM polls")]
        rows.sort(key=lambda item: item[1][0])
        for target, row in rows:
            t, state, error, poll_seconds, sampled, lost, pauses = row[:7]
            if t <= since:
                continue
            yield target, Update(
                time=t, state=TargetState(state), sample=_sample(t, row[7:]) if sampled else None,
                gc_pauses=tuple(GcPause(*p) for p in pauses), lost_pauses=lost,
                error=error, poll_seconds=poll_seconds, **extras.get((target, t), {}),
            )

    def _extras(self, since: float) -> dict[tuple[int, float], dict]:
        """Everything recorded beside the samples, by (target, time)."""
        extras: dict[tuple[int, float], dict] = {}

        def slot(target: int, t: float) -> dict:
            return extras.setdefault((target, t), {})

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


def _sample(t: float, figures: Sequence[Any]) -> Sample:
    sources, values = figures[0], figures[1:]
    memstats_values = values[: len(MEMSTATS_COLUMNS)]
    stats_values = values[len(MEMSTATS_COLUMNS): len(MEMSTATS_COLUMNS) + len(STATS_COLUMNS)]
    os_start = len(MEMSTATS_COLUMNS) + len(STATS_COLUMNS)
    os_values = values[os_start:os_start + len(OS_COLUMNS)]
    later_values = values[os_start + len(OS_COLUMNS):]  # none in older recordings
    memstats = None
    if any(v is not None for v in memstats_values):
        memstats = MemStats(**{c: _typed(c, v) for c, v in zip(MEMSTATS_COLUMNS, memstats_values)},
                            **dict(zip(LATER_MEMSTATS_COLUMNS, later_values)))
    os_figures = OsFigures(t, *os_values) if os_values[0] is not None else None
    return Sample(t, memstats, Stats(*stats_values), os_figures, sources or {})


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
