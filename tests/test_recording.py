"""Recordings: a live session recorded, killed mid-write, damaged, and replayed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from gotop.engine.fleet import Fleet
from gotop.engine.poller import Tiers
from gotop.engine.recording import Recorder, Recording, RecordingError
from gotop.engine.replay import Replay
from gotop.engine.target import Target
from gotop.model.profile_report import top

FAST = Tiers(interval=0.25, slow_every=0.5, leak_every=1.0)


def gotop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gotop", *args], capture_output=True, text=True, timeout=120)


async def record_live(path, targets, polls: int) -> dict:
    """Watch the targets with a recorder on; return their live histories by label."""
    fleet = Fleet(lambda w: None, FAST, discover=False,
                  recorder=Recorder(str(path), interval=FAST.interval, slow_every=FAST.slow_every))
    watched = [fleet.add(Target.open(str(t.pid))) for t in targets]
    for w in watched:
        w.poller.heap_every = 0.5
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
    assert len(live[f"pid {churn.pid} (agentpprof)"].gc_pauses) > 5  # every GC pause came through
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


def test_a_killed_recorder_leaves_a_readable_file(go_target, tmp_path):
    t = go_target("agentpprof", args=["-workload", "churn"])
    path = tmp_path / "killed.gotop"
    recorder = subprocess.Popen([sys.executable, "-m", "gotop", "record", str(t.pid), "-o", str(path),
                                 "--for", "60s", "--interval", "0.2"])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until a few samples are committed
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                    if db.execute("SELECT count(*) FROM samples").fetchone()[0] >= 5:
                        break
            except sqlite3.Error:
                pass
            time.sleep(0.1)
        os.kill(recorder.pid, signal.SIGKILL)
    finally:
        recorder.wait()
    recording = Recording(str(path))
    updates = list(recording.updates())
    assert len(updates) >= 5
    assert all(u.sample is not None for _, u in updates)
    replay = Replay(recording)
    replay.seek(recording.end)
    [watched] = replay.watched.values()
    assert len(watched.history.series["heap_alloc"]) == len(updates)


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
