"""Recordings: a live session recorded, killed mid-write, damaged, and replayed."""

from __future__ import annotations

import asyncio
import os
import pickle
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import pytest
from waiting import eventually

from gotop.demo import PROGRAMS, bundled_recording
from gotop.engine.fleet import Fleet
from gotop.engine.history import TargetState
from gotop.engine.poller import Tiers
from gotop.engine.recording import CHUNK_ROWS, Recorder, Recording, RecordingError
from gotop.engine.replay import Replay
from gotop.engine.target import Target
from gotop.model.profile_report import top

T = TypeVar("T")

FAST = Tiers(interval=0.25, slow_every=0.5)


def gotop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gotop", *args], capture_output=True, text=True, timeout=120)


async def record_live(path, targets, polls: int) -> dict:
    """Watch the targets with a recorder on; return their live histories by label."""
    fleet = Fleet(lambda w: None, FAST, discover=False,
                  recorder=Recorder(str(path), interval=FAST.interval, slow_every=FAST.slow_every))
    watched = [fleet.add(Target.open(str(t.pid))) for t in targets]
    for w in watched:
        w.heap_demand.want(record_live, 0.5)
        w.leak_demand.want(record_live, 1.0)  # goroutineleak profiles, as a growing group would want them
    while min(len(w.history.series["rss"]) for w in watched) < polls:
        await asyncio.sleep(0.05)
    await fleet.aclose()
    return {w.name: w.history for w in watched}


async def test_a_recorded_session_replays_with_the_same_figures(go_target, tmp_path):
    churn = go_target("agentpprof", toolchain="go1.27", args=["-workload", "healthy-churn", "-n", "10"])
    leak = go_target("pprofonly", args=["-workload", "leak-send", "-n", "50"])
    path = tmp_path / "session.gotop"
    live = await record_live(path, [churn, leak], polls=12)

    replay = Replay(Recording(str(path)))
    replay.seek(replay.recording.end)
    replayed = {w.name: w.history for w in replay.watched.values()}
    assert replayed.keys() == live.keys()
    for name, history in live.items():
        again = replayed[name]
        for figure, series in history.series.items():
            assert list(again.series[figure]) == list(series), figure
        assert list(again.gc_pauses) == list(history.gc_pauses)
        assert again.state is history.state
        assert {k: list(t.counts) for k, t in again.groups.items()} == \
               {k: list(t.counts) for k, t in history.groups.items()}
        assert [(g.key, g.count, g.state) for g in again.goroutines.groups] == \
               [(g.key, g.count, g.state) for g in history.goroutines.groups]
        assert top(again.heap.profile).rows == top(history.heap.profile).rows
    churned = live[f"pid {churn.pid} (agentpprof)"]
    cycles = churned.series["num_gc"]
    assert len(churned.gc_pauses) == cycles.last - cycles.values[0] >= 3  # every GC pause came through
    assert replayed[f"pid {churn.pid} (agentpprof)"].leaks is not None  # Go 1.27's goroutineleak
    assert os.stat(path).st_mode & 0o077 == 0  # private: it holds heap profiles


async def test_replay_clock_steps_seeks_back_and_changes_speed(go_target, tmp_path):
    t = go_target("agentpprof")
    path = tmp_path / "clock.gotop"
    await record_live(path, [t], polls=8)
    replay = Replay(Recording(str(path)))
    [watched] = replay.watched.values()
    first = len(watched.history.series["rss"])
    replay.step()
    assert replay.paused and len(watched.history.series["rss"]) == first + 1
    replay.seek(replay.recording.end)
    assert len(watched.history.series["rss"]) >= 8
    replay.seek(replay.recording.start)  # back: histories are rebuilt
    assert len(watched.history.series["rss"]) == first
    replay.faster(2)
    assert replay.speed == 4.0
    with pytest.raises(Exception, match="this is a recording"):
        await watched.target.gc()


def committed_polls(path) -> int:
    """The polls a recorder has committed so far (0 while the file is not yet a recording)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute("SELECT (SELECT count(*) FROM polls) + ? * (SELECT count(*) FROM poll_chunks)",
                              (CHUNK_ROWS,)).fetchone()[0]
    except sqlite3.Error:
        return 0


async def test_a_killed_recorder_leaves_a_readable_file(go_target, tmp_path):
    t = go_target("agentpprof", args=["-workload", "churn"])
    path = tmp_path / "killed.gotop"
    recorder = subprocess.Popen([sys.executable, "-m", "gotop", "record", str(t.pid), "-o", str(path),
                                 "--for", "10m", "--interval", "0.2"])
    try:
        await eventually(lambda: committed_polls(path) >= 5, timeout=60)
        os.kill(recorder.pid, signal.SIGKILL)
    finally:
        recorder.kill()
        recorder.wait()
    assert os.path.exists(f"{path}-wal")  # killed while its log was open
    recording = Recording(str(path))
    updates = list(recording.updates())
    assert len(updates) >= 5
    assert all(u.sample is not None for _, u in updates)
    replay = Replay(recording)
    replay.seek(recording.end)
    [watched] = replay.watched.values()
    assert len(watched.history.series["heap_alloc"]) == len(updates)


def test_a_closed_recording_is_one_file_in_a_rollback_journal(go_target, tmp_path):
    t = go_target("agentpprof")
    path = tmp_path / "closed.gotop"
    # Go's durations and bare seconds, as every time flag takes them.
    result = gotop("record", str(t.pid), "-o", str(path), "--for", "2500ms", "--interval", "200ms",
                   "--heap-every", "0.5")
    assert result.returncode == 0, result.stderr
    assert "for 2.5 s" in result.stdout
    assert os.listdir(tmp_path) == ["closed.gotop"]
    assert path.read_bytes()[18:20] == b"\x01\x01"  # the header's "legacy" (not WAL) read and write versions
    assert committed_polls(path) >= 5
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'interval'").fetchone() == ("0.2",)
        assert db.execute("SELECT count(*) FROM heaps").fetchone()[0] >= 2


def replayed(path: Path) -> dict[str, int]:
    """What a replay of the whole file shows: the polls of each target."""
    replay = Replay(Recording(str(path)))
    replay.seek(replay.recording.end)
    return {w.name: len(w.history.series["rss"]) for w in replay.watched.values()}


def as_nobody(action: Callable[[], T]) -> T:
    """action() in a forked child running as the user nobody; its result or exception comes back."""
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            outcome = (True, action())
        except BaseException as e:
            outcome = (False, e)
        with os.fdopen(write, "wb") as out:
            pickle.dump(outcome, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as result:
        ok, value = pickle.load(result)
    os.waitpid(pid, 0)
    if not ok:
        raise value
    return value


@pytest.fixture
def read_only_place():
    """A directory that anyone may read and nobody (but root) may write, under the system temp dir."""
    place = Path(tempfile.mkdtemp(prefix="gotop-ro-"))
    yield place
    place.chmod(0o755)
    shutil.rmtree(place)


@pytest.mark.parametrize("journal", ["delete", "wal"])
@pytest.mark.parametrize("user", ["me", "nobody"])
def test_a_recording_in_a_read_only_place_replays_and_nothing_is_written(read_only_place, journal, user):
    # "wal": what the bundled recording was, a WAL file with no side files, which
    # failed with "attempt to write a readonly database" and otherwise made two files.
    path = read_only_place / "demo.gotop"
    shutil.copyfile(bundled_recording(), path)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute(f"PRAGMA journal_mode={journal}").fetchone() == (journal,)
    assert os.listdir(read_only_place) == ["demo.gotop"]
    read_only_place.chmod(0o555)
    content = path.read_bytes()
    if user == "nobody":
        if os.geteuid() != 0:
            pytest.skip("becoming nobody needs root (and as a user, `me` is the non-root case)")
        polls = as_nobody(lambda: replayed(path))
    else:
        polls = replayed(path)
    assert polls == replayed(bundled_recording())
    assert len(polls) == len(PROGRAMS) and min(polls.values()) > 30
    assert os.listdir(read_only_place) == ["demo.gotop"]
    assert path.read_bytes() == content


def test_damaged_and_foreign_files_are_refused_in_one_line(tmp_path, go_target):
    t = go_target("agentpprof")
    good = tmp_path / "good.gotop"
    assert gotop("record", str(t.pid), "-o", str(good), "--for", "2s", "--interval", "0.2").returncode == 0
    data = good.read_bytes()
    cases = {
        "missing": None,
        "empty": b"",
        "garbage": os.urandom(5000),
        "truncated": data[: len(data) // 2],
        "text": b"hello, I am not a recording\n",
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    foreign = tmp_path / "foreign"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    newer = tmp_path / "newer"
    newer.write_bytes(data)
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    for name in [*cases, "foreign", "newer"]:
        result = gotop("replay", str(tmp_path / name))
        assert result.returncode == 2, name
        assert "Traceback" not in result.stderr, name
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert str(tmp_path / name) in result.stderr
    assert "version 99" in gotop("replay", str(newer)).stderr
    with pytest.raises(RecordingError):
        Recording(str(tmp_path / "truncated"))


async def test_a_target_that_leaves_the_fleet_leaves_the_recorder(go_target, tmp_path, monkeypatch):
    """A host's processes come and go (a recorder of every Go process sees
    thousands in a day): once an exited target is dropped, its last polls are
    in a chunk (the recorder holds none of them); the recording keeps them all."""
    from gotop.engine import fleet as fleet_module

    monkeypatch.setattr(fleet_module, "KEEP_EXITED", 0.2)
    t = go_target("pprofonly")
    path = tmp_path / "churn.gotop"
    recorder = Recorder(str(path), interval=FAST.interval, slow_every=FAST.slow_every)
    fleet = Fleet(lambda w: None, FAST, recorder=recorder, rescan_every=0.2)
    discovery = asyncio.create_task(fleet.run())
    try:
        watched = await eventually(lambda: fleet.find_pid(t.pid))
        await eventually(lambda: len(watched.history.series["rss"]) >= 3)
        t.kill()
        await eventually(lambda: fleet.find_pid(t.pid) is None)
        recorded_as = watched.recording_id
        with closing(sqlite3.connect(path)) as db:  # the file as another reader sees it, the recorder still open
            polls = db.execute("SELECT count(*) FROM polls WHERE target = ?", (recorded_as,)).fetchone()
        assert polls == (0,)  # all in a chunk
    finally:
        discovery.cancel()
        await fleet.aclose()
    recording = Recording(str(path))
    updates = [u for target, u in recording.updates() if target == recorded_as]
    assert [u.time for u in updates if u.sample] == watched.history.series["rss"].times  # every poll
    assert updates[-1].state is TargetState.EXITED
    replay = Replay(recording)
    replay.seek(replay.recording.end)
    [again] = [w for w in replay.watched.values() if w.pid == t.pid]
    assert list(again.history.series["rss"]) == list(watched.history.series["rss"])
