"""Goroutine dumps and grouped goroutine profiles -> goroutine groups keyed by stack.

Inputs (text in, frozen dataclasses out, no I/O):
  - full dumps: gops agent command 0x01 and /debug/pprof/goroutine?debug=2
    (`parse_goroutine_dump`): one `Goroutine` each, with state and wait minutes;
  - grouped text: /debug/pprof/goroutine?debug=1 and goroutineleak?debug=1
    (`parse_goroutine_profile_text`): counts per stack, no states;
  - decoded protobuf profiles, fed by gotop.model.profile through `groups_from_stacks`.

Grouping key. The sources show the same stack differently: debug=1 and the
protobuf hide or keep runtime frames by other rules than the debug=2 traceback
(which hides every unexported runtime.* frame, e.g. runtime.gopark and
runtime.main, but shows internal/runtime/* and exported runtime.* frames), and
debug=2 alone adds the `created by` frame. `stack_key` keeps the frames that all
of them show, so one stack gets one key whatever the source:
  1. drop leading runtime.* and internal/runtime/* frames (what debug=1 hides);
  2. drop every frame the debug=2 traceback hides: unexported runtime.* functions
     anywhere in the stack (runtime.goexit, runtime.main, runtime.gopanic, ...)
     and names without a package qualifier.
The key is then the remaining (function, file, line) frames, leaf first; stacks
with none left (runtime-only, or "stack unavailable") share the empty key. Stacks
deeper than a source records (32 frames in profiles before Go 1.23, 128 since;
debug=2 elides the middle of stacks over 100 frames) can still get different keys.

Labels. A group is shown by the frame that tells it apart (`GoroutineGroup.label`):
the first key frame outside PLUMBING (the runtime, internal/poll and the like, the
sync and sleep waits its state already names, the socket, file and reader layers),
so four groups blocked in net reads read as the four functions that read, not as
internal/poll.(*pollDesc).wait four times; else the `go` statement that created it.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from gotop.errors import GotopError
from gotop.model.profile import Profile

# runtime.Stack caps a dump at 64 MiB; leave room for the agent's framing.
MAX_TEXT_CHARS = 72 * 1024 * 1024

KIND_GOROUTINE = "goroutine"
KIND_GOROUTINELEAK = "goroutineleak"


class GoroutineParseError(GotopError):
    """Text that is not a goroutine dump or goroutine profile."""


@dataclass(frozen=True, slots=True, order=True)
class Frame:
    """One call site; function "" when the source could not symbolize the PC."""

    function: str
    file: str
    line: int


Labels = tuple[tuple[str, str], ...]  # pprof labels as sorted (key, value) pairs
StackKey = tuple[Frame, ...]
# A location's address (a return PC less one) -> its frames, innermost first: see runtime_frames.
RuntimeFrames = Mapping[int, tuple[Frame, ...]]


# --- which frames are runtime internals ------------------------------------------


def _is_exported_runtime(function: str) -> bool:
    """Go's isExportedRuntime: runtime.Foo or runtime.(*Bar).Foo (not runtime.foo)."""
    rest = function.removeprefix("runtime.")
    receiver, _, name = rest.rpartition(".")
    receiver = receiver.removeprefix("(*").removesuffix(")")
    return name[:1].isupper() and (not receiver or receiver[:1].isupper())


def hidden_by_traceback(function: str) -> bool:
    """True for frames a debug=2 traceback (GOTRACEBACK level 1) never prints."""
    if "." not in function:
        return True
    return function.startswith("runtime.") and not _is_exported_runtime(function)


def _is_runtime_package(function: str) -> bool:
    return function.startswith(("runtime.", "internal/runtime/"))


def stack_key(frames: Sequence[Frame]) -> StackKey:
    """The source-independent key of a stack (see the module docstring)."""
    start = 0
    while start < len(frames) and _is_runtime_package(frames[start].function):
        start += 1
    return tuple(f for f in frames[start:] if not hidden_by_traceback(f.function))


def _is_runtime_shim(function: str) -> bool:
    """Runtime internals living in other packages: linknamed `pkg.runtime_*` hooks
    (sync.runtime_Semacquire, internal/poll.runtime_pollWait) and internal/sync,
    where Go >= 1.24 moved the slow paths of sync.Mutex and friends."""
    if function.startswith("internal/sync."):
        return True
    tail = function[function.rfind("/") + 1:]
    return any(part.startswith("runtime_") for part in tail.split("."))


def top_function(frames: Sequence[Frame]) -> str:
    """What a user calls the top of the stack: the first key frame that is not a
    runtime shim, so a blocked Lock shows sync.(*Mutex).Lock, a channel wait shows
    the user's function and an idle connection internal/poll.(*pollDesc).wait.

    Falls back to the first key frame, then to the raw leaf ("" if no frames).
    """
    key = stack_key(frames)
    for frame in key:
        if not _is_runtime_shim(frame.function):
            return frame.function
    if key:
        return key[0].function
    return frames[0].function if frames else ""


# Frames many unrelated goroutines share while they wait, so they do not tell
# groups apart: the runtime and the standard library's internals
# (internal/poll, internal/sync, ...), the wait primitives the state column
# already names, and the layers every read, write, accept or dial passes
# through. Packages net/http, database/sql and the like are not in it: they
# say what a goroutine serves.
PLUMBING = (
    "runtime.", "internal/",
    "sync.", "time.Sleep",
    "syscall.", "os.(*File).", "net.",
    "io.", "bufio.", "crypto/tls.",
)


def telling_frame(frames: Sequence[Frame]) -> Frame | None:
    """The frame that tells a group apart: the first key frame outside PLUMBING
    (a net read shows the function that reads, not internal/poll), or None."""
    return next((f for f in stack_key(frames) if not f.function.startswith(PLUMBING)), None)


# Where a grouped profile (no states) shows a goroutine blocked, read from its
# frames, leaf first: runtime frames (kept by the protobuf profile) name channel
# and select waits; sync, poll and sleep frames show in every source. The
# names are the runtime's wait reasons, as a full dump would print them.
_WAIT_FRAMES: tuple[tuple[str, str], ...] = (
    ("runtime.chanrecv", "chan receive"),
    ("runtime.chansend", "chan send"),
    ("runtime.selectgo", "select"),
    ("runtime.block", "select (no cases)"),
    ("sync.(*RWMutex).RLock", "sync.RWMutex.RLock"),
    ("sync.(*RWMutex).Lock", "sync.RWMutex.Lock"),
    ("sync.(*Mutex).Lock", "sync.Mutex.Lock"),
    ("sync.(*WaitGroup).Wait", "sync.WaitGroup.Wait"),
    ("sync.(*Cond).Wait", "sync.Cond.Wait"),
    ("internal/poll.runtime_pollWait", "IO wait"),
    ("runtime.netpollblock", "IO wait"),
    ("time.Sleep", "sleep"),
    ("syscall.Syscall", "syscall"),
    ("syscall.RawSyscall", "syscall"),
    ("internal/runtime/syscall.Syscall", "syscall"),
)


def likely_state(frames: Sequence[Frame]) -> str | None:
    """The wait reason the frames of a grouped profile imply, or None if they don't say."""
    for frame in frames:
        for prefix, state in _WAIT_FRAMES:
            if frame.function.startswith(prefix):
                return state
    return None


# --- data model --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Goroutine:
    """One goroutine of a full dump (debug=2 / gops 0x01)."""

    id: int
    state: str  # wait reason (e.g. "chan receive") or status ("running"), flags removed
    wait_minutes: int = 0  # whole minutes blocked; 0 when the header shows none
    leaked: bool = False  # "(leaked)": proven leaked by the goroutineleak GC (Go >= 1.26)
    scan: bool = False
    durable: bool = False  # synctest: durably blocked
    locked_to_thread: bool = False
    synctest_bubble: int | None = None
    labels: Labels = ()  # printed in the header by Go >= 1.27 (GODEBUG tracebacklabels)
    frames: tuple[Frame, ...] = ()  # leaf first
    created_by: Frame | None = None  # the `go` statement that started it
    parent_id: int | None = None  # `in goroutine N`, Go >= 1.21
    frames_elided: bool = False  # "...N frames elided..." inside the stack
    stack_unavailable: bool = False  # running on another thread while dumped

    @property
    def key(self) -> StackKey:
        return stack_key(self.frames)


@dataclass(frozen=True, slots=True)
class GoroutineGroup:
    """Goroutines sharing one stack key."""

    key: StackKey
    count: int
    frames: tuple[Frame, ...]  # the full stack of its first member, as the source showed it, leaf first
    states: Counter[str] = field(default_factory=Counter)  # empty when the source has no states
    leaked: int = 0  # how many are proven leaked
    max_wait_minutes: int | None = None  # None when the source has no wait times
    created_by: str | None = None  # the most common creator function (dumps only)
    labels: Counter[Labels] = field(default_factory=Counter)  # label set -> goroutines (labelled only)
    goroutine_ids: tuple[int, ...] = ()  # dumps only

    @property
    def leaf(self) -> Frame | None:
        """The innermost frame exactly as the source printed it."""
        return self.frames[0] if self.frames else None

    @property
    def top_function(self) -> str:
        return top_function(self.frames)

    @property
    def label(self) -> str:
        """What tells this group apart, for people: the first frame outside
        PLUMBING, else the `go` statement that created it (dumps only), else the
        top of its stack ("" when it has none)."""
        if (frame := self.label_frame) is not None:
            return frame.function
        return f"created by {self.created_by}" if self.created_by else self.top_function

    @property
    def label_frame(self) -> Frame | None:
        """The frame `label` names, for its file and line (None for a creator)."""
        if (frame := telling_frame(self.frames)) is not None:
            return frame
        if self.created_by:
            return None
        top = self.top_function
        return next((f for f in self.frames if f.function == top), None)

    @property
    def state(self) -> str | None:
        """The most common state (full dumps), else the one the frames imply."""
        if self.states:
            return self.states.most_common(1)[0][0]
        return likely_state(self.frames)


@dataclass(frozen=True, slots=True)
class GoroutineProfile:
    """A snapshot of all goroutines, grouped by stack."""

    kind: str  # KIND_GOROUTINE or KIND_GOROUTINELEAK
    total: int  # goroutines in the snapshot (the profile's header total for debug=1)
    groups: tuple[GoroutineGroup, ...]  # biggest first, then by key
    has_states: bool  # True for full dumps (states, wait minutes, creators)
    truncated: bool = False  # the text was cut; the cut goroutine or record is left out
    # Text profiles: addresses of frames the text hid that no RuntimeFrames put back.
    unresolved: frozenset[int] = field(default=frozenset(), compare=False)

    def by_key(self) -> dict[StackKey, GoroutineGroup]:
        return {group.key: group for group in self.groups}


@dataclass(frozen=True, slots=True)
class GoroutineDump:
    goroutines: tuple[Goroutine, ...]
    truncated: bool = False  # runtime.Stack's 64 MiB cap (or a read cap) cut the text

    def profile(self) -> GoroutineProfile:
        """Group the goroutines by stack key."""
        builder = _Grouper()
        for g in self.goroutines:
            builder.add_goroutine(g)
        return GoroutineProfile(KIND_GOROUTINE, len(self.goroutines), builder.groups(),
                                has_states=True, truncated=self.truncated)


# --- grouping (the one place goroutines and stacks become groups) -----------------------


class _GroupAccumulator:
    __slots__ = ("key", "frames", "count", "states", "leaked", "max_wait", "creators", "labels", "ids")

    def __init__(self, key: StackKey, frames: tuple[Frame, ...]) -> None:
        self.key, self.frames = key, frames
        self.count = self.leaked = 0
        self.states: Counter[str] = Counter()
        self.max_wait: int | None = None
        self.creators: Counter[str] = Counter()
        self.labels: Counter[Labels] = Counter()
        self.ids: list[int] = []

    def freeze(self) -> GoroutineGroup:
        creator = self.creators.most_common(1)[0][0] if self.creators else None
        return GoroutineGroup(self.key, self.count, self.frames, self.states, self.leaked,
                              self.max_wait, creator, self.labels, tuple(self.ids))


class _Grouper:
    def __init__(self) -> None:
        self._groups: dict[StackKey, _GroupAccumulator] = {}

    def _group(self, frames: tuple[Frame, ...]) -> _GroupAccumulator:
        key = stack_key(frames)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _GroupAccumulator(key, frames)
        return group

    def add_stack(self, count: int, frames: tuple[Frame, ...], labels: Labels, leaked: bool) -> None:
        group = self._group(frames)
        group.count += count
        if leaked:
            group.leaked += count
        if labels:
            group.labels[labels] += count

    def add_goroutine(self, g: Goroutine) -> None:
        group = self._group(g.frames)
        group.count += 1
        group.leaked += g.leaked
        group.states[g.state] += 1
        group.max_wait = max(group.max_wait or 0, g.wait_minutes)
        if g.created_by is not None:
            group.creators[g.created_by.function] += 1
        if g.labels:
            group.labels[g.labels] += 1
        group.ids.append(g.id)

    def groups(self) -> tuple[GoroutineGroup, ...]:
        ordered = sorted(self._groups.values(), key=lambda a: (-a.count, a.key))
        return tuple(a.freeze() for a in ordered)


def _labels(labels: Labels | Mapping[str, str] | None) -> Labels:
    if not labels:
        return ()
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


# (count, frames leaf first, labels): what a decoded protobuf profile yields per sample.
StackSample = tuple[int, Sequence[Frame], Labels | Mapping[str, str] | None]


def groups_from_stacks(stacks: Iterable[StackSample], *, leaked: bool = False) -> tuple[GoroutineGroup, ...]:
    """Group (count, frames leaf first, labels) samples, e.g. from a protobuf profile.

    Frames are given as the source symbolized them, runtime frames included;
    `leaked=True` marks every goroutine as leaked (a goroutineleak profile).
    """
    grouper = _Grouper()
    for count, frames, labels in stacks:
        grouper.add_stack(count, tuple(frames), _labels(labels), leaked)
    return grouper.groups()


def profile_from_stacks(stacks: Iterable[StackSample], *, kind: str = KIND_GOROUTINE,
                        total: int | None = None) -> GoroutineProfile:
    """A GoroutineProfile from stack samples; `total` defaults to the sum of counts."""
    groups = groups_from_stacks(stacks, leaked=kind == KIND_GOROUTINELEAK)
    return GoroutineProfile(kind, sum(g.count for g in groups) if total is None else total,
                            groups, has_states=False)


def profile_from_pprof(profile: Profile, *, kind: str = KIND_GOROUTINE) -> GoroutineProfile:
    """Groups of a decoded goroutine (or goroutineleak) protobuf profile.

    The protobuf keeps the runtime frames (runtime.gopark, runtime.chanrecv1,
    ...) that debug=1 hides, so the groups' states can be read from their frames.
    """
    frames_of: dict[int, tuple[Frame, ...]] = {}
    table: FrameTable = {}

    def frames(location_id: int) -> tuple[Frame, ...]:
        if location_id not in frames_of:
            lines = profile.locations[location_id].lines
            frames_of[location_id] = tuple(
                _intern(table, ln.function.name, ln.function.filename, ln.line) for ln in lines
            )
        return frames_of[location_id]

    samples = profile.samples
    stacks = (
        (sample.values[0], [f for lid in sample.location_ids for f in frames(lid)],
         tuple((label.key, label.value) for label in sample.labels if label.value is not None))
        for sample in (samples[i] for i in range(len(samples)))
    )
    return profile_from_stacks(stacks, kind=kind)


def runtime_frames(profile: Profile) -> dict[int, tuple[Frame, ...]]:
    """By address, the frames of a decoded goroutine profile's locations that hold a
    runtime function: those the text form (debug=1) hides, at the top of a stack and
    runtime.goexit at its bottom. A process's runtime code does not move, so they put
    the hidden frames back into its later text profiles (parse_goroutine_profile_text)."""
    return {
        location.address: tuple(Frame(ln.function.name, ln.function.filename, ln.line) for ln in location.lines)
        for location in profile.locations.values()
        if location.address and any(_is_runtime_package(ln.function.name) for ln in location.lines)
    }


# --- text helpers --------------------------------------------------------------------------


def _to_text(data: str | bytes, what: str) -> str:
    if len(data) > MAX_TEXT_CHARS:
        raise GoroutineParseError(f"{what}: input too large ({len(data)} > {MAX_TEXT_CHARS} bytes)")
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")  # Go prints file names as raw bytes
    return data.replace("\r\n", "\n")


def _cut_partial_line(text: str) -> tuple[list[str], bool]:
    """Lines of `text`; a last line without its newline is a cut and is dropped."""
    lines = text.split("\n")
    truncated = lines[-1] != ""
    return lines[:-1], truncated


FrameTable = dict[tuple[str, str, int], Frame]


def _intern(table: FrameTable, function: str, file: str, line: int) -> Frame:
    """One Frame object per call site: a dump repeats the same frames thousands of times."""
    frame = table.get((function, file, line))
    if frame is None:
        frame = table[(function, file, line)] = Frame(function, file, line)
    return frame


_QUOTED = r'"(?:[^"\\]|\\.)*"'


def _go_unquote(token: str) -> str:
    """A Go-quoted string (strconv.Quote / runtime quoted) -> str; bare tokens as they are."""
    if not token.startswith('"'):
        return token
    try:
        value = ast.literal_eval(token)  # Go's escapes are a subset of Python's
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return token[1:-1]
    return value if isinstance(value, str) else token[1:-1]


# --- full dumps (debug=2, gops 0x01) ------------------------------------------------------------

_HEADER = re.compile(r"goroutine (\d+)(?: [^\[]*)? \[([^\]]*)\](.*):")
_TRACEBACK_LABEL = re.compile(rf"({_QUOTED}|[^\s\",:{{}}]+): ({_QUOTED}|[^\s\",{{}}]+)(?:, |$)")
_CREATED_BY = re.compile(r"created by (.+?)(?: in goroutine (\d+))?")
_LOCATION = re.compile(r"\t(.*):(\d+)(?: .*)?")
_STATE_FLAGS = {" (leaked)": "leaked", " (scan)": "scan", " (durable)": "durable"}
_MINUTES = re.compile(r"(\d+) minutes?")
_BUBBLE = re.compile(r"synctest bubble (\d+)")
_ELIDED = re.compile(r"\.\.\.(?:\d+|additional) frames elided\.\.\.")
_STACK_UNAVAILABLE = "goroutine running on other thread; stack unavailable"
_ANCESTOR = "[originating from goroutine "


def _traceback_labels(text: str) -> Labels:
    """` {k: v, "q k": "v\\n"}` after the bracket (Go >= 1.27); unparsable -> ()."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return ()
    body = text[1:-1]
    pairs, pos = [], 0
    while pos < len(body):
        match = _TRACEBACK_LABEL.match(body, pos)
        if match is None:
            return ()
        pairs.append((_go_unquote(match.group(1)), _go_unquote(match.group(2))))
        pos = match.end()
    return tuple(sorted(pairs))


def _header(match: re.Match[str]) -> dict:
    status, *extras = match.group(2).split(", ")
    info: dict = {"id": int(match.group(1)), "labels": _traceback_labels(match.group(3))}
    stripped = True
    while stripped:  # flags follow the reason in a fixed order, possibly several
        stripped = False
        for suffix, flag in _STATE_FLAGS.items():
            if status.endswith(suffix):
                status, info[flag], stripped = status[: -len(suffix)], True, True
    info["state"] = status
    for extra in extras:
        if (minutes := _MINUTES.fullmatch(extra)) is not None:
            info["wait_minutes"] = int(minutes.group(1))
        elif extra == "locked to thread":
            info["locked_to_thread"] = True
        elif (bubble := _BUBBLE.fullmatch(extra)) is not None:
            info["synctest_bubble"] = int(bubble.group(1))
    return info


class _DumpBuilder:
    """Turns the lines of one goroutine block into a Goroutine."""

    def __init__(self, header: dict, interned: FrameTable) -> None:
        self.header = header
        self.interned = interned
        self.frames: list[Frame] = []
        self.pending: str | None = None  # a function line waiting for its location
        self.creator: str | None = None
        self.created_by: Frame | None = None
        self.parent_id: int | None = None
        self.elided = self.unavailable = self.in_ancestors = False

    def _frame(self, function: str, file: str, line: int) -> Frame:
        return _intern(self.interned, function, file, line)

    def _flush_pending(self) -> None:
        if self.pending is not None:
            self.frames.append(self._frame(self.pending, "", 0))
            self.pending = None

    def feed(self, line: str) -> None:
        if self.in_ancestors:
            return
        if line.startswith("\t"):
            location = _LOCATION.fullmatch(line)
            if line.strip() == _STACK_UNAVAILABLE:
                self.unavailable = True
            elif location is not None and self.creator is not None and self.created_by is None:
                self.created_by = self._frame(self.creator, location.group(1), int(location.group(2)))
            elif location is not None and self.pending is not None:
                self.frames.append(self._frame(self.pending, location.group(1), int(location.group(2))))
                self.pending = None
            return
        self._flush_pending()
        if line.startswith(_ANCESTOR):
            self.in_ancestors = True  # GODEBUG=tracebackancestors: not this goroutine's stack
        elif (created := _CREATED_BY.fullmatch(line)) is not None:
            self.creator = created.group(1)
            self.parent_id = int(created.group(2)) if created.group(2) else None
        elif _ELIDED.fullmatch(line):
            self.elided = True
        elif self.creator is None:
            self.pending = _function_name(line)

    @property
    def complete(self) -> bool:
        """False when the block ends in a function or `created by` line without its location."""
        return self.pending is None and (self.creator is None or self.created_by is not None)

    def build(self) -> Goroutine:
        self._flush_pending()
        if self.creator is not None and self.created_by is None:
            self.created_by = self._frame(self.creator, "", 0)
        return Goroutine(
            frames=tuple(self.frames), created_by=self.created_by, parent_id=self.parent_id,
            frames_elided=self.elided, stack_unavailable=self.unavailable, **self.header,
        )


def _function_name(line: str) -> str:
    """`pkg.(*T).m[...](0x1, ...)` -> `pkg.(*T).m[...]`; `panic(...)` -> runtime.gopanic."""
    name = line[: line.rfind("(")] if line.endswith(")") and "(" in line else line
    return "runtime.gopanic" if name == "panic" else name


def parse_goroutine_dump(data: str | bytes) -> GoroutineDump:
    """A full goroutine dump (gops 0x01, goroutine?debug=2, a panic's traceback)."""
    text = _to_text(data, "goroutine dump")
    lines, truncated = _cut_partial_line(text)
    goroutines: list[Goroutine] = []
    interned: FrameTable = {}
    current: _DumpBuilder | None = None
    for number, line in enumerate(lines, 1):
        if line.startswith("goroutine ") and (header := _HEADER.fullmatch(line)) is not None:
            if current is not None:
                goroutines.append(current.build())
            current = _DumpBuilder(_header(header), interned)
        elif not line.strip():
            if current is not None:
                goroutines.append(current.build())
            current = None
        elif current is None:
            what = "does not start with a goroutine header" if not goroutines else f"stray line {number}"
            raise GoroutineParseError(f"not a goroutine dump: {what}: {line[:60]!r}")
        else:
            current.feed(line)
    if current is not None:
        # A cut text ends inside its last goroutine: leave that one out, it is partial.
        if truncated or not current.complete:
            truncated = True
        else:
            goroutines.append(current.build())
    elif not goroutines:
        raise GoroutineParseError("not a goroutine dump: no goroutines" if text.strip()
                                  else "empty goroutine dump")
    return GoroutineDump(tuple(goroutines), truncated)


# --- grouped text (debug=1 count profiles) --------------------------------------------------------

_PROFILE_HEADER = re.compile(r"(\S+) profile: total (\d+)")
_RECORD = re.compile(r"(\d+) @(?: 0x[0-9a-fA-F]+)*\s*")
_PPROF_LABEL = re.compile(rf"({_QUOTED}):({_QUOTED})")


def _pprof_frame(line: str, interned: FrameTable) -> tuple[int | None, Frame]:
    """`#\\t0x4d84fc\\tinternal/poll.(*pollDesc).waitRead+0x27c\\t\\tfile.go:89` -> (0x4d84fc, Frame)."""
    parts = [part for part in line[1:].split("\t") if part]
    function = file = ""
    number = 0
    if len(parts) >= 3:
        function = parts[1].rsplit("+0x", 1)[0]
        location = "\t".join(parts[2:])
        file, sep, digits = location.rpartition(":")
        if sep and digits.isascii() and digits.isdigit():
            number = int(digits)
        else:
            file = location
    return _hex(parts[0]) if parts else None, _intern(interned, function, file, number)


def _hex(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


def _stack(addresses: list[str], printed: list[tuple[int | None, Frame]], runtime: RuntimeFrames,
           unresolved: set[int]) -> tuple[Frame, ...]:
    """One record's frames: the printed ones, with the frames the text hides put back
    from `runtime` (by address: a return PC less one, as printed). A record with a
    hidden address `runtime` does not know (it goes to `unresolved`), or whose
    printed addresses do not follow its header's, is kept as printed. The last
    address, when hidden, is runtime.goexit, which the protobuf leaves out too."""
    frames = tuple(frame for _, frame in printed)
    pcs = [_hex(text) for text in addresses]
    if not pcs or None in pcs or any(address is None for address, _ in printed):
        return frames
    runs = [(address, len(list(run))) for address, run in groupby(pc - 1 for pc in pcs if pc is not None)]
    stack: list[Frame] = []
    shown = 0  # printed frames used
    missing = False
    for i, (address, repeats) in enumerate(runs):  # recursion repeats an address
        at = shown
        while shown < len(printed) and printed[shown][0] == address:
            shown += 1
        known = runtime.get(address)
        if known is not None:
            stack.extend(known * repeats)
        elif shown > at:
            stack.extend(frames[at:shown])
        elif i < len(runs) - 1:
            unresolved.add(address)
            missing = True
    return tuple(stack) if shown == len(printed) and not missing else frames


def parse_goroutine_profile_text(data: str | bytes, runtime: RuntimeFrames | None = None) -> GoroutineProfile:
    """goroutine?debug=1 or goroutineleak?debug=1 -> GoroutineProfile (no states).

    The text hides the runtime frames at the top of each stack (runtime.gopark,
    runtime.chanrecv: what tells a wait) and runtime.goexit at its bottom, yet
    lists every address. `runtime` (from `runtime_frames` of a protobuf profile of
    the same process) puts them back, so the groups are the protobuf's; the
    addresses it lacks are the profile's `unresolved`.
    """
    text = _to_text(data, "goroutine profile")
    lines, truncated = _cut_partial_line(text)
    body = iter(enumerate(lines, 1))
    header = next(((n, line) for n, line in body if line.strip()), None)
    if header is None:
        raise GoroutineParseError("empty goroutine profile")
    match = _PROFILE_HEADER.fullmatch(header[1].strip())
    if match is None or match.group(1) not in (KIND_GOROUTINE, KIND_GOROUTINELEAK):
        raise GoroutineParseError(f"not a goroutine profile (debug=1): starts with {header[1][:60]!r}")
    kind, total = match.group(1), int(match.group(2))

    runtime = runtime or {}
    unresolved: set[int] = set()
    samples: list[tuple[int, tuple[Frame, ...], Labels]] = []
    interned: FrameTable = {}
    count: int | None = None
    addresses: list[str] = []
    printed: list[tuple[int | None, Frame]] = []
    labels: Labels = ()
    for number, line in body:
        if not line.strip():
            if count is not None:
                samples.append((count, _stack(addresses, printed, runtime, unresolved), labels))
            count = None
        elif line.startswith("# labels: "):
            labels = tuple(sorted((_go_unquote(k), _go_unquote(v))
                                  for k, v in _PPROF_LABEL.findall(line[len("# labels: "):])))
        elif line.startswith("#"):
            if count is not None and line.startswith("#\t"):
                printed.append(_pprof_frame(line, interned))
        elif _RECORD.fullmatch(line):
            if count is not None:
                samples.append((count, _stack(addresses, printed, runtime, unresolved), labels))
            head, *addresses = line.split()
            count, printed, labels = int(head), [], ()
            addresses = addresses[1:]  # after the "@"
        else:
            raise GoroutineParseError(f"goroutine profile: unexpected line {number}: {line[:60]!r}")
    # Every record ends with a blank line, and the counts add up to the total:
    # a record still open at the end, or missing counts, mean the text was cut.
    truncated = truncated or count is not None or sum(s[0] for s in samples) < total
    groups = groups_from_stacks(samples, leaked=kind == KIND_GOROUTINELEAK)
    return GoroutineProfile(kind, total, groups, has_states=False, truncated=truncated,
                            unresolved=frozenset(unresolved))
