"""The TUI driven by Pilot against real Go processes."""

from __future__ import annotations

import os
import threading

from faulttargets import BreakableScanner, BreakableTarget
from hostileprofiles import profile_naming
from waiting import eventually

from gotop.engine.history import TargetState
from gotop.engine.poller import Tiers
from gotop.sources.gops import GopsClient
from gotop.ui.app import GotopApp
from gotop.ui.dialogs import ConfirmScreen
from gotop.ui.goroutines import GoroutinesScreen
from gotop.ui.overview import OverviewScreen
from gotop.ui.process import ProcessScreen

FAST = Tiers(interval=0.3, slow_every=0.6)


async def until(pilot, condition, timeout: float = 30.0):
    """Let the app run until `condition()` is truthy."""
    return await eventually(condition, timeout=timeout, pause=lambda: pilot.pause(0.1))


def row_texts(table, key: str) -> list[str]:
    return [c.plain for c in table.get_row(key)]


async def open_process(app: GotopApp, pilot, pid: int):
    """Wait for `pid` in the overview, move the cursor onto it and press enter."""
    overview = app.screen
    assert isinstance(overview, OverviewScreen)
    watched = await until(pilot, lambda: app.fleet.find_pid(pid))
    key = next(str(k) for k, w in app.fleet.watched.items() if w is watched)
    await until(pilot, lambda: key in overview.table.rows)
    overview.table.select(key)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ProcessScreen))
    return watched


async def open_heap(app: GotopApp, pilot, pid: int):
    """Open `pid`'s heap view once two GC cycles have published its allocations in the heap profile."""
    from gotop.ui.heap import HeapScreen

    watched = await open_process(app, pilot, pid)
    for _ in range(2):
        await watched.target.gc()
    await pilot.press("h")
    return watched, await until(pilot, lambda: isinstance(app.screen, HeapScreen) and app.screen)


async def test_overview_lists_targets_with_their_figures(go_target):
    both = go_target("agentpprof", args=["-workload", "park", "-n", "42"])
    plain = go_target("plain")
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.table
        for t in (both, plain):
            await until(pilot, lambda t=t: app.fleet.find_pid(t.pid))
        key = next(str(k) for k, w in app.fleet.watched.items() if w.pid == both.pid)
        await until(pilot, lambda: key in table.rows and row_texts(table, key)[4] != "-")
        cells = row_texts(table, key)
        assert cells[:4] == [str(both.pid), "agentpprof", go_version_short(), "MAPE"]
        assert int(cells[4].replace(",", "")) >= 42
        plain_key = next(str(k) for k, w in app.fleet.watched.items() if w.pid == plain.pid)
        await until(pilot, lambda: plain_key in table.rows and row_texts(table, plain_key)[4] != "-")
        assert row_texts(table, plain_key)[3] == "M"  # nothing added: its runtime read from its memory
        assert int(row_texts(table, plain_key)[4].replace(",", "")) >= 1


async def test_overview_marks_a_service_that_serves_metrics_with_r(etcd_service):
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.table
        watched = await until(pilot, lambda: app.fleet.find_pid(etcd_service.pid))
        key = next(str(k) for k, w in app.fleet.watched.items() if w is watched)
        await until(pilot, lambda: key in table.rows and row_texts(table, key)[4] != "-")
        # etcd without --enable-pprof: expvar on its client port, /metrics on both ports
        assert row_texts(table, key)[3] == ("M" if watched.process.memory else "") + "ER"
        assert int(row_texts(table, key)[4].replace(",", "")) > 0


def go_version_short() -> str:
    from gotargets import go_version

    return go_version("go").removeprefix("go")


async def test_process_screen_shows_live_figures_that_change(go_target):
    t = go_target("agentpprof", args=["-workload", "churn", "-n", "100"])
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        watched = await open_process(app, pilot, t.pid)
        screen = app.screen
        series = watched.history.series
        await until(pilot, lambda: len(series["total_alloc"] if "total_alloc" in series else series["alloc_rate"]) >= 3)
        values = series["num_gc"].values
        await until(pilot, lambda: series["num_gc"].last > values[-1])  # the churn makes GCs run
        value = screen.query_one("#heap_inuse .value").render()
        assert str(value) not in ("", "-")
        assert str(t.pid) in str(screen.query_one("#title").render())


async def test_goroutine_view_puts_the_leaking_group_first(go_target):
    t = go_target("agentpprof", args=["-workload", "leak-send"])
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(110, 30)) as pilot:
        watched = await open_process(app, pilot, t.pid)
        await pilot.press("g")
        screen = await until(pilot, lambda: isinstance(app.screen, GoroutinesScreen) and app.screen)
        await until(pilot, lambda: len(watched.history.groups) and screen.table.row_count
                    and any(len(tr.counts) >= 4 for tr in watched.history.groups.values()))

        def first():
            screen.table.move_cursor(row=0)
            return screen._selected()

        assert first().top_function.endswith("leakySendResult")
        # Its goroutines reach the send after a sleep: when gotop's first protobuf profile came
        # before any did, the send's runtime frame is learnt at the next (RELEARN_RUNTIME_EVERY).
        await until(pilot, lambda: first().state == "chan send")


async def test_gc_asks_first_then_num_gc_rises(go_target):
    t = go_target("agentpprof")
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        watched = await open_process(app, pilot, t.pid)
        history = watched.history

        def forced() -> int | None:
            # Forced cycles only: polling allocates, so the target may also GC on its own.
            sample = history.last_sample
            return sample.memstats.num_forced_gc if sample and sample.memstats else None

        before = await until(pilot, lambda: forced() is not None and (forced(), history.series["num_gc"].last))
        await pilot.press("G")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(3 * FAST.interval)
        assert forced() == before[0]  # nothing happens while the question is open
        await pilot.press("y")
        await until(pilot, lambda: forced() == before[0] + 1)
        assert history.series["num_gc"].last > before[1]


async def test_killed_target_is_shown_exited(go_target):
    t = go_target("agentpprof")
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        watched = await open_process(app, pilot, t.pid)
        t.kill()
        await until(pilot, lambda: watched.history.state is TargetState.EXITED)
        await pilot.pause(2 * FAST.interval)
        assert "EXITED" in str(app.screen.query_one("#title").render())
        await pilot.press("escape")
        assert isinstance(app.screen, OverviewScreen)


async def test_heap_view_shows_the_real_allocation_site_and_drills_into_it(go_target):
    from gotop.ui.function import FunctionScreen

    t = go_target("agentpprof", args=["-workload", "retain", "-n", "400"])
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(120, 30)) as pilot:
        watched, screen = await open_heap(app, pilot, t.pid)
        await until(pilot, lambda: screen.table.row_count > 0)
        screen.table.move_cursor(row=0)
        assert screen.table.selected_key() == "gotop.test/targets/internal/workload.retainHere"

        # The cursor stays on its function when the order changes.
        screen.table.select("gotop.test/targets/internal/workload.retain")
        await pilot.press("s")  # sort by cum
        await until(pilot, lambda: not screen.computing)
        assert screen.table.selected_key() == "gotop.test/targets/internal/workload.retain"

        await pilot.press("enter")
        drill = await until(pilot, lambda: isinstance(app.screen, FunctionScreen) and app.screen)
        edges = drill.query_one("#edges")
        await until(pilot, lambda: edges.row_count > 0)
        names = [str(edges.get_row(key)[3]) for key in edges.rows]
        assert "gotop.test/targets/internal/workload.Start" in names[0]  # its caller
        assert "workload.retain" in names[1]  # the function itself
        assert any("retainHere" in n for n in names[2:])  # its callee
        assert watched.poller.heap_every is not None
        await pilot.press("escape", "escape")
        assert watched.poller.heap_every is None  # heap profiles stop with the view


async def test_function_source_reads_no_secret_and_no_fifo(tmp_path):
    """A profile naming /etc/shadow, and one naming a FIFO main.go in a real
    module directory (a FIFO proves no module): the Source tab says why each is
    not shown; the FIFO is never opened (on the event loop it froze the screen: a timer unblocks such a
    reader, so that the test fails instead of hanging)."""
    from gotop.model.profile import parse_profile
    from gotop.ui.function import FunctionScreen

    module = tmp_path / "leaky"
    module.mkdir()
    (module / "go.mod").write_text("module gotoplab/leaky\n")
    fifo = module / "main.go"
    os.mkfifo(fifo)
    unblock = threading.Timer(40, _open_for_writing, [fifo])
    unblock.start()
    app = GotopApp(tiers=FAST)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            for source, why in (("/etc/shadow", "outside the program's source directories: not read"),
                                (str(fifo), "outside the program's source directories: not read")):
                profile = parse_profile(profile_naming(tmp_path, source).read_bytes())
                screen = FunctionScreen(profile, "main.retain", None)
                app.push_screen(screen)
                text = await until(
                    pilot, lambda s=screen: app.screen is s and next(iter(s.query("#source_text")), None))
                await until(pilot, lambda t=text: t.text)
                assert f"  {source}: {why}; values by line:" in text.text.splitlines()
                assert "root:" not in text.text
                await pilot.press("escape")
    finally:
        unblock.cancel()


def _open_for_writing(fifo) -> None:
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader: nothing to unblock


async def test_leaks_are_marked_and_open_their_evidence():
    """On the demo recording (real programs): the leaking process is marked in the
    list, its screen names the leak, and each finding opens the view with its evidence."""
    from gotop.demo import bundled_recording
    from gotop.engine.recording import Recording
    from gotop.engine.replay import Replay
    from gotop.ui.heap import HeapScreen
    from gotop.ui.leaks import LeaksScreen

    replay = Replay(Recording(str(bundled_recording())))
    replay.paused = True
    replay.seek(replay.recording.end)
    app = GotopApp(replay=replay)
    async with app.run_test(size=(120, 36)) as pilot:
        overview = app.screen
        by_name = {w.process.name: (str(k), w) for k, w in app.fleet.watched.items()}
        await until(pilot, lambda: by_name["leakyservice"][0] in overview.table.rows)
        assert row_texts(overview.table, by_name["leakyservice"][0])[1].startswith("● leakyservice")
        assert not row_texts(overview.table, by_name["workerpool"][0])[1].startswith("●")

        overview.table.select(by_name["leakyservice"][0])
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, ProcessScreen) and app.screen)
        await pilot.pause()
        assert "goroutines grow at main.fetchFromBackend" in str(screen.query_one("#leak-line").render())
        await pilot.press("l")
        leaks = await until(pilot, lambda: isinstance(app.screen, LeaksScreen) and app.screen)
        await until(pilot, lambda: leaks.table.row_count > 0)
        leaks.table.move_cursor(row=0)
        await pilot.press("enter")
        groups = await until(pilot, lambda: isinstance(app.screen, GoroutinesScreen) and app.screen)
        await until(pilot, lambda: groups.table.row_count > 0)
        assert groups._selected().top_function == "main.fetchFromBackend"  # the cursor is on the evidence
        assert "✔" in row_texts(groups.table, groups.table.selected_key())[4]  # proven by Go 1.27's runtime

        await pilot.press("escape", "escape", "escape")
        overview.table.select(by_name["cache"][0])
        await pilot.press("enter", "l")
        leaks = await until(pilot, lambda: isinstance(app.screen, LeaksScreen) and app.screen)
        await until(pilot, lambda: leaks.table.row_count > 0)
        await pilot.press("enter")
        heap = await until(pilot, lambda: isinstance(app.screen, HeapScreen) and app.screen)
        await until(pilot, lambda: heap.table.row_count > 0)
        assert heap.table.selected_key() == "main.storeResponse"


async def test_gogc_is_asked_checked_confirmed_then_set(go_target):
    from gotop.ui.dialogs import AskScreen

    t = go_target("agentpprof")
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        watched = await open_process(app, pilot, t.pid)
        await pilot.press("p")
        ask = await until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen)
        await pilot.press(*"lots", "enter")
        assert "is not a GC percent" in str(ask.query_one("#problem").render())  # refused, still asking
        ask.query_one("#answer").value = ""
        await pilot.press("5", "0", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ProcessScreen))
        await until(pilot, lambda: all(w.is_finished for w in app.workers if w.group == "action"))
        change = await watched.target.set_gc_percent(100)  # the agent says what it was
        assert change.previous == 50


async def test_failures_of_any_kind_are_shown_and_retried(go_target):
    """Discovery and polls failing with errors nobody foresaw: each shown where it
    belongs (the overview's title, the target's state and message), and retried."""
    t = go_target("agentpprof")
    scanner = BreakableScanner()
    scanner.fault = RecursionError("injected")
    app = GotopApp(tiers=FAST, scanner=scanner)
    app.fleet.rescan_every = 0.3
    async with app.run_test(size=(160, 30)) as pilot:
        overview = app.screen

        def title() -> str:
            return str(overview.query_one("#title").render())

        await until(pilot, lambda: "discovery failed: RecursionError: injected (retrying)" in title())
        scanner.fault = None
        await until(pilot, lambda: app.fleet.find_pid(t.pid))
        await until(pilot, lambda: "discovery failed" not in title())

        target = BreakableTarget.open(str(t.pid))
        target.fault = ZeroDivisionError("injected")
        watched = app.fleet.add(target)
        rows = overview.table.rows
        await until(pilot, lambda: target.label in rows and rows[target.label]["state"].plain == "failed")
        overview.table.select(target.label)
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, ProcessScreen) and app.screen)
        assert screen.watched is watched
        await until(pilot, lambda: "FAILED" in str(screen.query_one("#title").render()))
        assert "poll failed: ZeroDivisionError: injected" in str(screen.query_one("#message").render())
        target.fault = None
        await until(pilot, lambda: watched.history.state in (TargetState.UP, TargetState.SLOW))


async def test_heap_view_dims_gotops_own_requests_and_o_hides_them(go_target):
    """The gzip writers of protobuf goroutine profiles (what gotop once fetched every 5 s)
    are in the target's allocations as net/http/pprof's: dimmed and marked, never shown
    as the program's; `o` leaves them out, and the program's own site stays."""
    from targetio import http_get

    from gotop.ui.heap import HeapView

    writer, site = "compress/flate.NewWriter", "gotop.test/targets/internal/workload.retainHere"
    t = go_target("pprofonly", args=["-workload", "retain", "-n", "400"])
    for _ in range(20):
        http_get(t.http_addr, "/debug/pprof/goroutine")
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(120, 30)) as pilot:
        _, screen = await open_heap(app, pilot, t.pid)
        await until(pilot, lambda: screen.table.row_count and not screen.computing)
        screen._set_view(sample_index=screen.watched.history.heap.profile.sample_index("alloc_space"))
        await until(pilot, lambda: writer in screen.table.rows and not screen.computing)
        row = screen.table.get_row(writer)
        assert row[-1].plain.startswith("(gotop) ") and all(cell.style == "dim" for cell in row)
        assert not screen.table.get_row(site)[-1].plain.startswith("(gotop)")
        assert "gotop's own requests" in str(screen.query_one("#title").render())

        await pilot.press("o")
        await until(pilot, lambda: screen.view.hide_own and not screen.computing)
        assert writer not in screen.table.rows and site in screen.table.rows
        assert not any(name.startswith("net/http/pprof.") for name in screen.table.rows)
        assert "hidden" in str(screen.query_one("#title").render())
        await pilot.press("o")
        await until(pilot, lambda: screen.view == HeapView(sample_index=screen.view.sample_index)
                    and writer in screen.table.rows and not screen.computing)


async def test_goroutine_view_dims_the_goroutine_serving_gotops_request_and_o_hides_it(go_target):
    from gotop.model.monitoring import monitoring_groups

    t = go_target("pprofonly", args=["-workload", "park", "-n", "7"])
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(110, 30)) as pilot:
        watched = await open_process(app, pilot, t.pid)
        await pilot.press("g")
        screen = await until(pilot, lambda: isinstance(app.screen, GoroutinesScreen) and app.screen)
        profile = await until(pilot, lambda: screen.table.row_count and watched.history.goroutines)
        own = {str(hash(key)) for key in monitoring_groups(profile.groups)}
        assert own  # the handler writing the profile gotop asked for
        await until(pilot, lambda: own & set(screen.table.rows))
        for key in own & set(screen.table.rows):
            label = screen.table.get_row(key)[4]
            assert label.plain.startswith("(gotop) ") and label.style == "dim"
        parked = next(k for k in screen.table.rows if screen.table.get_row(k)[4].plain.endswith("parkedHere"))
        assert screen.table.get_row(parked)[0].plain == "7"

        await pilot.press("o")
        await until(pilot, lambda: screen.hide_own and not any(
            screen.table.get_row(k)[4].plain.startswith("(gotop)") for k in screen.table.rows))
        assert parked in screen.table.rows
        assert "gotop's own (hidden)" in str(screen.query_one("#title").render())


async def test_heap_rows_are_computed_on_a_worker_and_the_newest_request_wins(go_target):

    retain = "gotop.test/targets/internal/workload.retain"
    t = go_target("agentpprof", args=["-workload", "retain", "-n", "400"])
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(120, 30)) as pilot:
        watched, screen = await open_heap(app, pilot, t.pid)
        await until(pilot, lambda: retain in screen.table.rows and not screen.computing)
        screen.table.select(retain)

        def title() -> str:
            return str(screen.query_one("#title").render())

        # Two keys in one go: neither is computed on the event loop, and the first is superseded.
        screen.action_sort()
        screen.action_sample_type()
        assert screen.computing and "computing…" in title()
        assert screen.table.sort_column == "flat"  # the old rows stay until the new ones are ready
        await until(pilot, lambda: not screen.computing)
        assert "computing…" not in title() and "alloc_objects" in title()
        assert screen.table.sort_column == "cum"
        assert screen.table.selected_key() == retain  # the cursor stayed on its function


async def test_screens_share_the_engine_knobs_they_turn(go_target):
    """Following a target and the heap profile cadence are asked of the engine by
    each owner and withdrawn by each: one screen leaving takes away only its own want."""
    from gotop.ui.heap import HEAP_EVERY, HeapScreen

    t = go_target("agentpprof")
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(120, 30)) as pilot:
        watched = await open_process(app, pilot, t.pid)
        first = app.screen
        app.open_process(watched)  # the same target twice (e.g. `gotop PID` and enter in the list)
        await until(pilot, lambda: app.screen is not first and isinstance(app.screen, ProcessScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is first)
        assert watched.followed  # the first screen still follows it
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        assert not watched.followed

        await open_process(app, pilot, t.pid)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HeapScreen))
        assert watched.poller.heap_every == HEAP_EVERY
        watched.heap_demand.want("gotop record", 60.0)  # another owner, less often
        assert watched.poller.heap_every == HEAP_EVERY  # the most frequent want wins
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ProcessScreen))
        assert watched.poller.heap_every == 60.0  # the other owner's want outlives the screen


async def test_screens_left_before_they_are_shown_read_none_of_their_widgets(go_target):
    """A screen popped before its mount handler ran (or pushed as the app exits) has its
    widgets removed while its handlers and workers still run: they must not read them
    (a NoMatches traceback, or a worker's failure that ends the app)."""
    from gotop.ui.function import FunctionScreen
    from gotop.ui.heap import HeapScreen
    from gotop.ui.leaks import LeaksScreen

    t = go_target("agentpprof", args=["-workload", "retain", "-n", "50"])
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        watched = await open_process(app, pilot, t.pid)
        watched.poller.request_heap()
        heap = await until(pilot, lambda: watched.history.heap)
        for screen in (ProcessScreen(watched, app.save_dir), HeapScreen(watched), GoroutinesScreen(watched),
                       LeaksScreen(watched), FunctionScreen(heap.profile, "runtime.main", None)):
            app.push_screen(screen)
            app.pop_screen()
            await until(pilot, lambda screen=screen: not screen.is_running)
        assert isinstance(app.screen, ProcessScreen)
        app.push_screen(OverviewScreen(app.fleet, "again"))
        app.push_screen(ProcessScreen(watched, app.save_dir))
        app.exit()


# --- the overview's filter --------------------------------------------------------------------

async def three_named_targets(go_target, tmp_path, app: GotopApp, pilot) -> dict[str, str]:
    """Targets named alpha-, bravo- and charlie-gotoptest, shown in the overview
    sorted by name: name -> row key."""
    import shutil

    from gotargets import target_binary

    started = {}
    for name in ("alpha-gotoptest", "bravo-gotoptest", "charlie-gotoptest"):
        shutil.copy(target_binary("plain"), tmp_path / name)
        started[name] = go_target("plain", binary=tmp_path / name)
    overview = app.screen
    keys = {}
    for name, t in started.items():
        watched = await until(pilot, lambda t=t: app.fleet.find_pid(t.pid))
        keys[name] = next(str(k) for k, w in app.fleet.watched.items() if w is watched)
    await until(pilot, lambda: set(keys.values()) <= overview.table.rows.keys())
    overview.table.sort_by("name", reverse=False)
    return keys


async def test_enter_in_the_filter_puts_the_cursor_on_the_first_match_in_the_list(go_target, tmp_path):
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        keys = await three_named_targets(go_target, tmp_path, app, pilot)
        overview = app.screen
        overview.table.select(keys["charlie-gotoptest"])
        await pilot.press("slash", *"bravo-gotop", "enter")
        assert app.focused is overview.table
        assert overview.table.selected_key() == keys["bravo-gotoptest"]
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, ProcessScreen) and app.screen)
        assert "bravo-gotoptest" in screen.watched.name
        await pilot.press("escape")
        # A filter the selected row still matches keeps the cursor on it.
        await pilot.press("slash", *"-gotoptest", "enter")
        assert overview.table.selected_key() == keys["bravo-gotoptest"]


async def test_escape_in_the_filter_clears_it_and_keeps_the_cursor_on_its_row(go_target, tmp_path):
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        keys = await three_named_targets(go_target, tmp_path, app, pilot)
        overview = app.screen
        overview.table.select(keys["charlie-gotoptest"])
        await pilot.press("slash", *"alpha-gotop")
        assert overview.table.selected_key() == keys["alpha-gotoptest"]  # the only row shown
        await pilot.press("escape")
        assert overview.filter_text == "" and keys["charlie-gotoptest"] in overview.table.rows
        assert app.focused is overview.table
        assert overview.table.selected_key() == keys["alpha-gotoptest"]
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, ProcessScreen) and app.screen)
        assert "alpha-gotoptest" in screen.watched.name


async def test_a_flat_goroutine_count_grows_by_0_not_minus_0():
    """On the demo recording (real programs): workerpool's goroutine count is flat,
    its slope over the last minute a fraction of a goroutine below zero at 45 s."""
    from gotop.demo import bundled_recording
    from gotop.engine.recording import Recording
    from gotop.engine.replay import Replay

    replay = Replay(Recording(str(bundled_recording())))
    replay.paused = True
    replay.seek(replay.recording.start + 45)
    app = GotopApp(replay=replay)
    async with app.run_test(size=(100, 30)) as pilot:
        overview = app.screen
        key, watched = next((str(k), w) for k, w in app.fleet.watched.items() if w.process.name == "workerpool")
        assert -0.5 < watched.history.series["goroutines"].slope_per_minute(60) < 0
        await until(pilot, lambda: key in overview.table.rows)
        overview.table.select(key)
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, ProcessScreen) and app.screen)
        await pilot.pause()
        assert str(screen.query_one("#goroutine_text").render()).startswith("Δ 0/min  threads")


async def test_the_heap_scrollbar_follows_the_table_after_a_filter(go_target):

    t = go_target("agentpprof", args=["-workload", "retain-generic", "-n", "400"])
    # A heap profile holds the allocations of two GC cycles back, and this target runs no GC after
    # its start-up (nor does gotop make it): two GCs, so that the profile holds all of them.
    host, port = t.ready["agent"].rsplit(":", 1)
    for _ in range(2):
        await GopsClient(host, int(port)).gc()
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(100, 10)) as pilot:  # 6 rows shown: the profile has more
        _, screen = await open_heap(app, pilot, t.pid)
        table = screen.table
        await until(pilot, lambda: table.row_count > 0 and not screen.computing)
        await pilot.press("i")  # allocations ever made: many more functions than the 5 that retain heap now
        await until(pilot, lambda: table.row_count > 8)
        await pilot.press("end")
        await until(pilot, lambda: table.scroll_y > 0 and table.vertical_scrollbar.position == table.scroll_y)
        await pilot.press("slash", *"main", "enter")  # main.main, runtime.main: no scrollbar, at the top
        await until(pilot, lambda: table.row_count < 6 and not table.show_vertical_scrollbar)
        await pilot.press("slash", *["backspace"] * 4, "enter")
        await until(pilot, lambda: table.row_count > 8 and table.show_vertical_scrollbar)
        await pilot.pause()
        assert table.scroll_y == 0
        assert table.vertical_scrollbar.position == 0  # the thumb at the top, where the table is


# --- text from targets is never markup --------------------------------------------------------

HOSTILE = "[/x] [@click=app.quit]Click me[/]"


def toasts(app: GotopApp) -> list[str]:
    from textual.widgets._toast import Toast

    return [str(toast.render()) for toast in app.screen.query(Toast)]


async def test_an_error_body_holding_markup_is_shown_as_it_is():
    from faultservers import CannedAnswerServer, http_response

    # Stand-in fault server: a pprof server whose every answer is an error with markup in its body.
    async with CannedAnswerServer(http_response("500 Internal Server Error", HOSTILE.encode() + b"\n"),
                                  request="http") as server:
        app = GotopApp([server.url], tiers=FAST)
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await until(pilot, lambda: isinstance(app.screen, ProcessScreen))
            await pilot.press("G")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            shown = await until(pilot, lambda: [t for t in toasts(app) if "HTTP 500" in t])
            assert HOSTILE in shown[0]
            assert app.is_running and isinstance(app.screen, ProcessScreen)


async def test_an_agent_answer_holding_markup_is_shown_as_it_is():
    from faultservers import CannedAnswerServer

    # Stand-in fault server: a gops agent that answers every command with markup.
    async with CannedAnswerServer(HOSTILE.encode() + b"\n") as server:
        app = GotopApp([f"127.0.0.1:{server.port}"], tiers=FAST)
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await until(pilot, lambda: isinstance(app.screen, ProcessScreen))
            await pilot.press("p")
            await until(pilot, lambda: app.screen.__class__.__name__ == "AskScreen")
            await pilot.press("5", "0", "enter")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            shown = await until(pilot, lambda: [t for t in toasts(app) if "[/x]" in t])
            assert HOSTILE in shown[0]
            assert app.is_running and isinstance(app.screen, ProcessScreen)


# --- what is on screen is polled at the fast pace ----------------------------------------------

async def test_targets_off_the_screen_are_polled_less_often_until_shown(go_target, tmp_path):
    """A target the screens do not show is polled every unseen_every (a minute here: at
    most once more while the test runs); scrolled into view, or opened, it is polled at
    once and every interval (a minute's wait would outlast the safety timeout)."""
    import shutil

    from gotargets import target_binary

    shutil.copy(target_binary("plain"), tmp_path / "offscreen-gotoptest")
    pids = {go_target("plain", binary=tmp_path / "offscreen-gotoptest").pid for _ in range(12)}
    app = GotopApp(tiers=Tiers(interval=0.3, slow_every=0.6, unseen_every=60.0))
    async with app.run_test(size=(100, 12)) as pilot:
        overview = app.screen
        mine = await until(pilot, lambda: len(found := {str(k): w for k, w in app.fleet.watched.items()
                                                        if w.pid in pids}) == len(pids) and found)
        await pilot.press("slash", *"offscreen-gotop", "enter")
        overview.table.sort_by("pid", reverse=False)
        await until(pilot, lambda: overview.table.rows.keys() == mine.keys())

        async def polled_as_shown() -> None:
            """The rows in view gain polls at the fast pace; the others at most one."""
            shown = set(overview.table.visible_keys())
            assert shown and shown < mine.keys()
            await until(pilot, lambda: all(w.poll_demand.wanted == (k in shown) for k, w in mine.items()))
            before = {k: _polls(w) for k, w in mine.items()}
            await until(pilot, lambda: all(_polls(mine[k]) >= before[k] + 5 for k in shown))
            assert all(_polls(w) <= before[k] + 1 for k, w in mine.items() if k not in shown)

        await polled_as_shown()
        await pilot.press("end")  # the cursor on the last row: the table scrolls
        await polled_as_shown()
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, ProcessScreen) and app.screen)
        await until(pilot, lambda: [w for w in mine.values() if w.poll_demand.wanted] == [screen.watched])


def _polls(watched) -> int:
    """Polls that answered (each gives the OS figures of a local process)."""
    return len(watched.history.series["rss"])
