"""Pictures of every screen, from recorded data with the replay clock frozen.

The data is the demo recording (examples/demo.gotop, made by
examples/record_demo.py from the real demo programs); Textual is pinned in
pyproject.toml so the SVGs stay stable. Update them after an intended change
with: tests/run tests/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest
from waiting import eventually

from gotop.demo import bundled_recording
from gotop.engine.recording import Recording
from gotop.engine.replay import Replay
from gotop.ui.app import GotopApp


def frozen_app(at: float = 45.0) -> GotopApp:
    """The app on the recording, paused `at` seconds in."""
    replay = Replay(Recording(str(bundled_recording())))
    replay.paused = True
    replay.seek(replay.recording.start + at)
    return GotopApp(replay=replay)


async def open_process(pilot, name: str) -> None:
    app = pilot.app
    await pilot.pause()
    overview = app.screen
    key = next(str(k) for k, w in app.fleet.watched.items() if w.process and w.process.name == name)
    overview.refresh_data()
    overview.table.select(key)
    await pilot.press("enter")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 36), (150, 30)])
def test_overview(snap_compare, size):
    assert snap_compare(frozen_app(), terminal_size=size)


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
def test_process(snap_compare, size):
    async def run_before(pilot):
        await open_process(pilot, "leakyservice")

    assert snap_compare(frozen_app(), terminal_size=size, run_before=run_before)


def test_goroutines(snap_compare):
    async def run_before(pilot):
        await open_process(pilot, "leakyservice")
        await pilot.press("g")
        await pilot.pause()

    assert snap_compare(frozen_app(), terminal_size=(110, 24), run_before=run_before)


def test_heap(snap_compare):
    async def run_before(pilot):
        await open_process(pilot, "cache")
        await pilot.press("h")
        await eventually(lambda: pilot.app.screen.table.row_count and not pilot.app.screen.computing,
                         pause=lambda: pilot.pause(0.05))

    assert snap_compare(frozen_app(), terminal_size=(110, 24), run_before=run_before)


def test_help(snap_compare):
    assert snap_compare(frozen_app(), terminal_size=(100, 30), press=["question_mark"])
