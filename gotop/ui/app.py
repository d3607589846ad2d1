"""The gotop TUI: the fleet of watched targets and the screens that show it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.screen import ModalScreen, Screen

from gotop.discovery.processes import Scanner
from gotop.engine.fleet import Fleet, Watched
from gotop.engine.poller import Tiers
from gotop.engine.program import Program, ProgramError, take_late_endpoints
from gotop.engine.target import Target
from gotop.engine.targetspec import parse_target
from gotop.errors import GotopError
from gotop.model.goroutines import StackKey
from gotop.ui import keys
from gotop.ui.help import HelpScreen
from gotop.ui.overview import OverviewScreen
from gotop.ui.screen import GotopScreen
from gotop.units import parse_duration

if TYPE_CHECKING:  # replays and recordings load sqlite3: only when one is played or started
    from gotop.engine.replay import Replay


class GotopApp(App):
    CSS_PATH = "gotop.tcss"
    TITLE = "gotop"
    BINDINGS = keys.bindings(keys.GLOBAL) + keys.bindings(keys.REPLAY)
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, specs: Iterable[str] = (), tiers: Tiers = Tiers(),  # noqa: B008 - Tiers is a frozen dataclass
                 window: float = 600.0, save_dir: Path | None = None, record: str | None = None,
                 replay: Replay | None = None, title: str | None = None, scanner: Scanner | None = None,
                 first_scan: Future | None = None, program: Program | None = None) -> None:
        super().__init__()
        self.specs = [parse_target(s) for s in specs]
        self.tiers = Tiers(replay.interval) if replay else tiers
        self.save_dir = save_dir or Path.cwd()  # the directory gotop runs in, not the one it was imported in
        self.replay = replay
        self._record_to = record
        self._title = title
        self._repaint_soon = False
        self._seen: set[int] = set()  # targets shown at least once
        addresses = [s for s in self.specs if s.pid is None]
        if replay is not None:
            replay.on_change = self._changed
        self.program = program  # `gotop run`: the program gotop started, the only one watched
        self.program_watched: Watched | None = None
        self.fleet: Fleet | Replay = replay or Fleet(self._changed, tiers, window, discover=not (addresses or program),
                                                     scanner=scanner or Scanner(), first_scan=first_scan)
        self._open_pid = next((s.pid for s in self.specs if s.pid is not None), None)

    async def on_mount(self) -> None:
        if self._title:
            where = self._title
        elif self.program:
            where = f"run {self.program.command}"
        elif self.replay:
            recording = self.replay.recording
            where = f"replay of {os.path.basename(recording.path)} ({recording.meta.get('host', '?')})"
        else:
            where = ", ".join(s.text for s in self.specs) or os.uname().nodename
        if self._record_to:
            self.start_recording(self._record_to)
        self.push_screen(OverviewScreen(self.fleet, where))
        self.set_interval(self.tiers.interval, self._tick)
        self.run_worker(self.fleet.run(), exit_on_error=False, group="discovery")
        if self.program:
            self.run_worker(self._watch_program(), exclusive=True, group="program")
        if isinstance(self.fleet, Fleet):  # a replay shows only what was recorded
            for spec in self.specs:
                if spec.pid is None:
                    self.run_worker(self._add_address(self.fleet, spec.text), exit_on_error=False)

    async def _add_address(self, fleet: Fleet, text: str) -> None:
        try:
            target = await asyncio.to_thread(Target.open, text)
        except GotopError as e:
            self.notify(str(e), severity="error", timeout=15)
            return
        watched = fleet.add(target)
        if len(self.specs) == 1:
            self.open_process(watched)

    async def on_unmount(self) -> None:
        await self.fleet.aclose()
        if self.program:
            await asyncio.to_thread(self.program.stop)

    # -- gotop run --------------------------------------------------------------

    async def _watch_program(self) -> None:
        """Find the Go program the started command runs, and watch it: at start, and after
        a restart (its history marks the restart). A command that ends first shows its output."""
        assert self.program and isinstance(self.fleet, Fleet)
        finding = asyncio.ensure_future(asyncio.to_thread(self.program.find_go_process))
        if not (await asyncio.wait({finding}, timeout=1.0))[0]:  # `go run` builds first
            self.notify(f"waiting for the Go program of {self.program.command} to start", timeout=5)
        try:
            process = await finding
        except ProgramError as e:
            from gotop.ui.program import OutputScreen

            self.notify(str(e), severity="error", timeout=30)
            if not isinstance(self.screen, OutputScreen):
                self.push_screen(OutputScreen(self.program))
            return
        target = Target.for_process(process, gctrace=self.program.output)
        if self.program_watched is None:
            self.program_watched = self.fleet.add(target, (process.pid, process.create_time), process)
            self.open_process(self.program_watched)
        else:
            self.fleet.replace(self.program_watched, target)
        await take_late_endpoints(target)

    def action_restart_program(self) -> None:
        self.run_worker(self._restart_program(), exclusive=True, group="program")

    async def _restart_program(self) -> None:
        assert self.program
        self.notify(f"restarting {self.program.command}")
        await asyncio.to_thread(self.program.restart)
        await self._watch_program()

    def _changed(self, watched: Watched) -> None:
        """A target was updated, appeared or left. Screens repaint on the next tick,
        except that the first figures of a target are shown at once."""
        if self._open_pid is not None and watched.pid == self._open_pid:
            self._open_pid = None
            self.open_process(watched)
        if id(watched) not in self._seen and not self._repaint_soon:
            self._seen.add(id(watched))
            self._repaint_soon = True
            self.set_timer(0.05, self._tick)

    def notify(self, message: str, *, markup: bool = False, **kwargs) -> None:
        """Every notification is plain text, whatever a screen passes for `markup`:
        they carry errors and answers from targets, where `[/x]` would raise
        MarkupError and `[@click=...]` become an action (gotop's own need no markup)."""
        super().notify(message, markup=False, **kwargs)

    def now(self) -> float:
        """The time the screens show: the replay clock, or the wall clock."""
        return self.replay.clock if self.replay else time.time()

    def _tick(self) -> None:
        self._repaint_soon = False
        if not (self.is_running and self.screen_stack):  # shutting down: no screen left to paint
            return
        screen = self.screen
        if screen.is_mounted and hasattr(screen, "refresh_data"):
            screen.refresh_data()
        if isinstance(self.fleet, Fleet):
            self.fleet.view(self, self._shown_targets())

    def _shown_targets(self) -> list[Watched]:
        """The targets the screens on view show: the top screen's, and those under
        the dialogs over it."""
        shown: list[Watched] = []
        for screen in reversed(self.screen_stack):
            if isinstance(screen, GotopScreen):
                shown.extend(screen.shown_targets())
            if not isinstance(screen, ModalScreen):
                break
        return shown

    # -- navigation -------------------------------------------------------------

    # The screens behind the overview are imported when first opened: the first frame
    # does not wait for them (with the widgets they load, about 20 ms and 1.2 MB).
    def open_process(self, watched: Watched) -> None:
        if self.program and watched is self.program_watched:
            from gotop.ui.program import ProgramScreen

            self.push_screen(ProgramScreen(watched, self.save_dir, self.program))
        else:
            from gotop.ui.process import ProcessScreen

            self.push_screen(ProcessScreen(watched, self.save_dir))

    def open_heap(self, watched: Watched, select: str | None = None) -> None:
        from gotop.ui.heap import HeapScreen

        self.push_screen(HeapScreen(watched, select))

    def open_goroutines(self, watched: Watched, select: StackKey | None = None) -> None:
        from gotop.ui.goroutines import GoroutinesScreen

        self.push_screen(GoroutinesScreen(watched, select))

    def open_leaks(self, watched: Watched) -> None:
        from gotop.ui.leaks import LeaksScreen

        self.push_screen(LeaksScreen(watched))

    # -- recording and replay ---------------------------------------------------

    def start_recording(self, path: str) -> None:
        if not isinstance(self.fleet, Fleet):
            self.notify("this is a replay already", severity="warning")
            return
        from gotop.engine.recording import Recorder

        try:
            self.fleet.start_recording(Recorder(path, interval=self.tiers.interval, slow_every=self.tiers.slow_every))
        except GotopError as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"recording to {path}")

    def action_record(self) -> None:
        fleet = self.fleet
        if isinstance(fleet, Fleet) and fleet.recorder is not None:
            path = fleet.recorder.path
            fleet.stop_recording()
            self.notify(f"recording saved: {path}\nplay it with: gotop replay {path}", timeout=10)
        else:
            self.start_recording(str(self.save_dir / time.strftime("gotop-%Y%m%d-%H%M%S.gotop")))  # refused in a replay

    def _replaying(self) -> Replay:
        """The replay the replay_* actions drive: check_action offers them only in a replay."""
        assert self.replay is not None
        return self.replay

    def action_replay_play(self) -> None:
        replay = self._replaying()
        replay.paused = not replay.paused

    def action_replay_step(self) -> None:
        self._replaying().step()
        self._tick()

    def action_replay_speed(self, steps: int) -> None:
        replay = self._replaying()
        replay.faster(steps)
        self.notify(f"speed x{replay.speed:g}", timeout=2)

    def action_replay_seek(self, seconds: float) -> None:
        replay = self._replaying()
        replay.seek(replay.clock + seconds)
        self._tick()

    def action_replay_jump(self) -> None:
        from gotop.ui.dialogs import AskScreen

        replay = self._replaying()

        def jump(text: str | None) -> None:
            if text:
                try:
                    offset = parse_duration(text.replace(":", "m", 1) + ("s" if ":" in text else ""))
                except GotopError as e:
                    self.notify(str(e), severity="error")
                    return
                replay.seek(replay.recording.start + offset)
                self._tick()
        self.push_screen(AskScreen("Jump to a time from the start (e.g. 90, 1:30, 2m)"), jump)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.startswith("replay_"):
            return self.replay is not None
        if action == "restart_program":
            return self.program is not None
        return True

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette lists this screen's actions, from the same table as the footer."""
        yield from super().get_system_commands(screen)
        for binding in screen.BINDINGS:
            if isinstance(binding, tuple) or not binding.description:
                continue
            action = binding.action
            target = self if action.startswith("app.") else screen
            name = action.removeprefix("app.")
            callback = getattr(target, f"action_{name}", None)
            if callback is not None and "(" not in name:
                yield SystemCommand(binding.description, binding.tooltip or binding.description, callback)
