"""Every key binding of the TUI, in one table.

The screens' BINDINGS, the footer, the help screen (`?`) and the command
palette (ctrl+p) all read this table, so a key is described once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    keys: str  # Textual key names, comma-separated
    action: str
    label: str  # short, for the footer and the palette
    help: str  # one sentence for the help screen
    show: bool = True  # in the footer
    display: str | None = None  # how the help screen writes the key

    def binding(self) -> Binding:
        return Binding(self.keys, self.action, self.label, show=self.show, id=self.id,
                       key_display=self.display, tooltip=self.help)


GLOBAL = (
    Key("help", "question_mark", "app.help", "Help", "Show this help: every key of every screen.", display="?"),
    Key("quit", "q", "app.quit", "Quit", "Quit gotop. Targets are never changed by leaving."),
    Key("palette", "ctrl+p", "app.command_palette", "Commands",
        "Search every action of this screen by name.", show=False),
    Key("record", "R", "app.record", "Record",
        "Start or stop recording everything shown into a file (gotop replay FILE plays it).", show=False),
)

REPLAY = (
    Key("replay_play", "P", "app.replay_play", "Play/pause", "Replay: pause or play the recording."),
    Key("replay_step", "full_stop", "app.replay_step", "Step", "Replay: pause and show the next poll.",
        display="."),
    Key("replay_faster", "plus", "app.replay_speed(1)", "Faster", "Replay: play faster.", display="+"),
    Key("replay_slower", "minus", "app.replay_speed(-1)", "Slower", "Replay: play slower.", display="-"),
    Key("replay_back", "less_than_sign", "app.replay_seek(-30)", "-30s", "Replay: back 30 seconds.",
        display="<", show=False),
    Key("replay_forward", "greater_than_sign", "app.replay_seek(30)", "+30s", "Replay: forward 30 seconds.",
        display=">", show=False),
    Key("replay_jump", "J", "app.replay_jump", "Jump", "Replay: jump to a time from the start."),
)

OVERVIEW = (
    Key("open", "enter", "open", "Open", "Open the process under the cursor: live panes, heap and goroutines."),
    Key("filter", "slash", "filter", "Filter", "Show only processes whose pid, name or path contains the text.",
        display="/"),
    Key("sort", "s", "sort_next", "Sort", "Sort by the next column (again to cycle; S reverses)."),
    Key("sort_reverse", "S", "sort_reverse", "Reverse", "Reverse the sort order.", show=False),
    Key("pause", "space", "pause", "Pause", "Freeze the table (polling goes on); again to resume."),
)

PROCESS = (
    Key("heap", "h", "heap", "Heap", "Heap top-N: allocation sites by in-use or allocated bytes, live."),
    Key("goroutines", "g", "goroutines", "Goroutines", "Goroutines grouped by stack, biggest growth first."),
    Key("leaks", "l", "leaks", "Leaks", "The leaks gotop sees in this process, each with its evidence."),
    Key("gc", "G", "force_gc", "GC", "Run a garbage collection in the target (asks first)."),
    Key("gogc", "p", "set_gogc", "GOGC", "Set the target's GC percent, or turn GC off (asks first; needs the agent)."),
    Key("cpu", "c", "cpu_profile", "CPU prof", "Save a 30 s CPU profile to a file (polling goes on)."),
    Key("trace", "t", "trace", "Trace", "Save a 5 s execution trace to a file."),
    Key("heap_file", "H", "heap_profile", "Heap prof", "Save the heap profile to a file.", show=False),
    Key("dump", "d", "dump", "Dump", "Show every goroutine's stack (one dump; it stops the world while written)."),
    Key("back", "escape", "back", "Back", "Back to the previous screen.", display="esc"),
)

PROGRAM = (  # the process screen of `gotop run`, beside PROCESS
    Key("output", "o", "output", "Output", "The program's own stdout and stderr, live (gotop run)."),
    Key("restart", "r", "app.restart_program", "Restart",
        "Stop the program (its whole process group) and start it again (gotop run)."),
)

OUTPUT = (
    Key("output_restart", "r", "app.restart_program", "Restart", "Stop the program and start it again."),
    Key("output_back", "escape", "back", "Back", "Back to the process.", display="esc"),
)

GOROUTINES = (
    Key("stack", "enter", "stack", "Stack", "Show the full stack of the group under the cursor."),
    Key("groups_own", "o", "toggle_own", "Own",
        "Hide or show gotop's own goroutines (serving its requests: pprof, expvar, /metrics), shown dimmed."),
    Key("wait_times", "w", "wait_times", "Wait times",
        "How long the group's goroutines have waited: takes one full dump (stops the world while written)."),
    Key("group_sort", "s", "sort_next", "Sort", "Sort by growth per minute or by count."),
    Key("back", "escape", "back", "Back", "Back to the process.", display="esc"),
)

HEAP = (
    Key("drill", "enter", "drill", "Drill",
        "Callers, callees, stacks and source lines of the function under the cursor."),
    Key("heap_sort", "s", "sort", "Sort", "Sort by flat or by cum."),
    Key("sample_type", "i", "sample_type", "Type",
        "Next sample type: inuse_space, inuse_objects, alloc_space, alloc_objects."),
    Key("heap_filter", "slash", "filter", "Regex", "Show only functions matching a regular expression.", display="/"),
    Key("baseline", "b", "baseline", "Baseline", "Mark the current profile as the baseline; Δ shows growth since."),
    Key("growth", "v", "growth", "Growth", "Show only the growth since the baseline (pprof -base)."),
    Key("heap_own", "o", "toggle_own", "Own",
        "Hide or show the stacks of gotop's own requests (the pprof, expvar, agent and /metrics handlers), "
        "shown dimmed."),
    Key("heap_escapes", "e", "escapes", "Escapes",
        "Why on the heap: after each function, the causes the compiler's escape analysis gives for its "
        "allocations (its module built once with -gcflags=-m=2 when the source is on this host); again to hide."),
    Key("freeze", "space", "freeze", "Freeze", "Freeze the table; again to follow the live profile."),
    Key("refresh_heap", "r", "refresh_now", "Refresh", "Fetch a new heap profile now (otherwise every 15 s)."),
)

FUNCTION = (
    Key("graph_tab", "1", "tab('graph')", "Callers", "Callers and callees with their share; enter follows one."),
    Key("stacks_tab", "2", "tab('stacks')", "Stacks", "The heaviest stacks that reach the function."),
    Key("source_tab", "3", "tab('source')", "Source", "Source lines with flat and cum, when the file is on this host."),
)

LEAKS = (
    Key("evidence", "enter", "evidence", "Evidence",
        "Open the view that shows the finding: its goroutine group, heap site or descriptor counts."),
    Key("leaks_back", "escape", "app.pop_screen", "Back", "Back to the process.", display="esc"),
)

SCREENS: dict[str, tuple[Key, ...]] = {
    "Everywhere": GLOBAL,
    "Replay (gotop replay FILE)": REPLAY,
    "Process list": OVERVIEW,
    "Process": PROCESS,
    "Run (gotop run -- CMD), beside the process keys": PROGRAM,
    "Program output": OUTPUT,
    "Heap": HEAP,
    "Function (heap drill-down)": FUNCTION,
    "Goroutines": GOROUTINES,
    "Leaks": LEAKS,
}


def bindings(keys: Iterable[Key]) -> list[BindingType]:
    """A BINDINGS list, typed as Textual declares that class variable."""
    return [key.binding() for key in keys]
