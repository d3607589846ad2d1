"""gotop.model.goroutines: dumps and grouped profiles from captured samples, the
documented traceback grammar, and live targets whose debug=1, debug=2, agent dump
and protobuf profile must give the same groups under the same keys."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutated
from targetio import agent_request, http_get
from waiting import eventually

from gotop.engine.target import Target
from gotop.errors import GotopError
from gotop.model.goroutines import (
    KIND_GOROUTINE,
    KIND_GOROUTINELEAK,
    Frame,
    Goroutine,
    GoroutineDump,
    GoroutineGroup,
    GoroutineParseError,
    GoroutineProfile,
    groups_from_stacks,
    hidden_by_traceback,
    parse_goroutine_dump,
    parse_goroutine_profile_text,
    profile_from_pprof,
    profile_from_stacks,
    runtime_frames,
    stack_key,
    telling_frame,
    top_function,
)
from gotop.model.profile import parse_profile

SAMPLES = Path(__file__).resolve().parent / "samples"
WORKLOAD = "gotop.test/targets/internal/workload"
PARKED = f"{WORKLOAD}.parkedHere"
TOOLCHAINS = ["go", "go1.27", "go1.19"]


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# --- the protobuf path, decoded by the real pprof reader (`go tool pprof -raw`) ----------------

_RAW_SAMPLE = re.compile(r"\s+(\d+):((?: \d+)*) ?")
_RAW_LABELS = re.compile(r"(\S+?):\[([^\]]*)\]")
_RAW_LOCATION = re.compile(r"\s+(\d+): 0x[0-9a-f]+ M=\d+ ?(.*)")
_RAW_LINE = re.compile(r"(\S+) (.+):(\d+):\d+ s=\d+")


def pprof_raw_stacks(profile: Path) -> list[tuple[int, tuple[Frame, ...], dict[str, str]]]:
    """(count, frames leaf first, labels) of a protobuf goroutine profile, via `go tool pprof -raw`."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    raw = subprocess.run(["go", "tool", "pprof", "-raw", str(profile)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    samples_part, _, rest = raw.partition("\nLocations\n")
    locations_part = rest.partition("\nMappings\n")[0]
    locations: dict[str, list[Frame]] = {}
    current: list[Frame] = []
    for line in locations_part.splitlines():
        if (loc := _RAW_LOCATION.fullmatch(line)) is not None:
            current = locations[loc.group(1)] = []
            line = loc.group(2)
        if (fn := _RAW_LINE.fullmatch(line.strip())) is not None:
            current.append(Frame(fn.group(1), fn.group(2), int(fn.group(3))))
    stacks: list[tuple[int, tuple[Frame, ...], dict[str, str]]] = []
    for line in samples_part.split("Samples:\n", 1)[1].splitlines()[1:]:
        if (s := _RAW_SAMPLE.fullmatch(line)) is not None:
            ids = s.group(2).split()
            stacks.append((int(s.group(1)), tuple(f for i in ids for f in locations[i]), {}))
        elif stacks and (labels := _RAW_LABELS.findall(line)):
            stacks[-1][2].update(labels)
    return stacks


# --- captured samples (Go 1.27.3) -----------------------------------------------------------------


def test_debug1_sample_groups():
    p = parse_goroutine_profile_text(sample("pprof-goroutine-debug1.txt"))
    assert (p.kind, p.total, p.has_states, p.truncated) == (KIND_GOROUTINE, 132, False, False)
    assert [g.count for g in p.groups] == [125, 1, 1, 1, 1, 1, 1, 1]
    assert sum(g.count for g in p.groups) == p.total
    park = p.groups[0]
    assert park.key == (Frame("main.blockForever", "gotoplab/leaky/main.go", 22),)
    assert park.top_function == "main.blockForever" and park.leaf == park.key[0]
    assert park.states == Counter() and park.max_wait_minutes is None and park.goroutine_ids == ()
    # tabwriter pads with several tabs; the function and file:line still come apart
    serve = next(g for g in p.groups if g.key[-1].function == "main.main.func1")
    assert Frame("net/http.(*Server).ListenAndServe", "net/http/server.go", 3485) in serve.frames
    assert serve.top_function == "internal/poll.(*pollDesc).wait"  # past the runtime_pollWait hook
    main = next(g for g in p.groups if g.top_function == "main.main")
    assert main.frames[-1].function == "runtime.main" and main.key == main.frames[:1]


def test_debug2_sample_goroutines():
    dump = parse_goroutine_dump(sample("pprof-goroutine-debug2.txt"))
    assert len(dump.goroutines) == 132 and not dump.truncated
    first = dump.goroutines[0]
    assert (first.id, first.state, first.parent_id) == (146, "running", 9)
    assert first.frames[0] == Frame("runtime/pprof.writeGoroutineStacks", "runtime/pprof/pprof.go", 816)
    assert first.frames[3].function == "net/http/pprof.handler.ServeHTTP"
    assert first.created_by == Frame("net/http.(*Server).Serve", "net/http/server.go", 3604)
    main = next(g for g in dump.goroutines if g.id == 1)
    assert main.created_by is None and main.parent_id is None and main.state == "chan receive"
    p = dump.profile()
    assert p.total == 132 and p.has_states
    park = p.groups[0]
    assert park.count == 125 and park.states == Counter({"chan receive": 125})
    assert park.created_by == "main.spawnStuck" and park.max_wait_minutes == 0
    assert len(set(park.goroutine_ids)) == 125
    assert dict(p.by_key()[park.key].states) == {"chan receive": 125}


def steady(profile: GoroutineProfile) -> dict:
    """key -> count without the goroutines that serve the request taking the snapshot
    (the gops agent serves it on its listening goroutine)."""
    transient = ("runtime/pprof.", "net/http.(*conn)", "net/http.(*connReader)", "github.com/google/gops/agent.")
    return {g.key: g.count for g in profile.groups
            if g.key and not any(f.function.startswith(transient) for f in g.frames)}


@pytest.mark.go  # go tool pprof -raw reads the protobuf sample
def test_sample_sources_give_the_same_keys_and_counts():
    debug1 = parse_goroutine_profile_text(sample("pprof-goroutine-debug1.txt"))
    debug2 = parse_goroutine_dump(sample("pprof-goroutine-debug2.txt")).profile()
    proto = profile_from_stacks(pprof_raw_stacks(SAMPLES / "pprof-goroutine.pb.gz"))
    assert steady(debug1) == steady(debug2) == steady(proto)
    assert len(steady(debug1)) == 4
    # the protobuf keeps runtime.gopark & co. and has no created-by: the key drops them
    park = proto.groups[0]
    assert park.leaf.function == "runtime.gopark" and park.count == 125
    assert park.key == debug1.groups[0].key and park.top_function == "main.blockForever"


def test_gops_stack_sample_matches_debug1_keys():
    dump = parse_goroutine_dump(sample("gops-stack.txt"))
    assert len(dump.goroutines) == 130
    agent = dump.profile()
    debug1 = steady(parse_goroutine_profile_text(sample("pprof-goroutine-debug1.txt")))
    for key, count in steady(agent).items():
        assert debug1[key] == count


def test_groups_waiting_in_internal_poll_are_labelled_by_the_code_that_waits():
    for p in (parse_goroutine_profile_text(sample("pprof-goroutine-debug1.txt")),
              parse_goroutine_dump(sample("pprof-goroutine-debug2.txt")).profile()):
        polling = [g for g in p.groups if g.top_function == "internal/poll.(*pollDesc).wait"]
        assert sorted(g.label for g in polling) == ["github.com/google/gops/agent.listen",
                                                    "net/http.(*Server).Serve"]
        assert {g.state for g in polling} == {"IO wait"}  # the state still says what it waits for
        assert p.groups[0].label == "main.blockForever"  # a user's own wait keeps its name
        reader = next(g for g in p.groups if g.top_function == "syscall.Syscall")
        assert reader.label == "net/http.(*connReader).backgroundRead"
        assert reader.label_frame == next(f for f in reader.frames if f.function == reader.label)


def test_goroutineleak_samples():
    leak = parse_goroutine_profile_text(sample("pprof-goroutineleak-debug1.txt"))
    assert (leak.kind, leak.total) == (KIND_GOROUTINELEAK, 52)
    [group] = leak.groups
    assert (group.count, group.leaked, group.top_function) == (52, 52, "main.waitReply")
    dump = parse_goroutine_dump(sample("pprof-goroutineleak-debug2.txt"))
    leaked = [g for g in dump.goroutines if g.leaked]
    assert [g.id for g in leaked] == [8, 18, 9]
    assert {g.state for g in leaked} == {"chan receive"}  # the flag is not part of the state
    assert all(g.parent_id == 7 for g in leaked)
    assert dump.profile().by_key()[group.key].leaked == 3


def test_the_text_profile_gets_the_runtime_frames_it_hides_back_from_a_protobuf():
    """The two samples are of one process: debug=1 hides runtime.gopark and runtime.chanrecv
    (the wait) at the top of each stack, and runtime.goexit at its bottom; the protobuf's
    runtime frames put them back, frame for frame."""
    protobuf = parse_profile((SAMPLES / "pprof-goroutine.pb.gz").read_bytes())
    text = sample("pprof-goroutine-debug1.txt")
    bare, restored = parse_goroutine_profile_text(text), parse_goroutine_profile_text(text, runtime_frames(protobuf))
    assert bare.groups[0].top_function == "main.blockForever" and bare.groups[0].state is None
    assert bare.unresolved
    assert restored.unresolved == frozenset()
    assert restored.groups[0].state == "chan receive"
    assert [(g.key, g.count, g.frames) for g in restored.groups] == \
        [(g.key, g.count, g.frames) for g in profile_from_pprof(protobuf).groups]


def test_a_hidden_runtime_frame_not_learnt_is_named_unresolved():
    protobuf = parse_profile((SAMPLES / "pprof-goroutine.pb.gz").read_bytes())
    learnt = runtime_frames(protobuf)
    [chanrecv] = [address for address, frames in learnt.items() if frames[0].function == "runtime.chanrecv"]
    del learnt[chanrecv]
    restored = parse_goroutine_profile_text(sample("pprof-goroutine-debug1.txt"), learnt)
    assert chanrecv in restored.unresolved
    park = restored.groups[0]
    assert park.top_function == "main.blockForever" and park.state is None  # as printed: the wait unknown


def test_crlf_dumps_and_profiles_parse_the_same():
    for name, parse in [("pprof-goroutine-debug2.txt", parse_goroutine_dump),
                        ("pprof-goroutine-debug1.txt", parse_goroutine_profile_text)]:
        text = sample(name)
        assert parse(text.replace("\n", "\r\n")) == parse(text) == parse(text.encode())


# --- the traceback grammar (documented in runtime/traceback.go: goroutineheader, traceback2) ----

DUMP = """\
goroutine 1 gp=0xc000002380 m=0 mp=0x5a3e20 [running, locked to thread]:
panic({0x4b6f40?, 0xc000012345?})
	/usr/local/go/src/runtime/panic.go:785 +0x132
main.(*Server[...]).handle(...)
	/app/main.go:12
main.Run[go.shape.int](0x1)
	/app/main.go:20 +0x18 fp=0xc000045f50 sp=0xc000045f30 pc=0x48f7b8
main.main()
	/app/main.go:30 +0x25

goroutine 7 [select, 12 minutes]:
main.worker(0xc000020000)
	C:/src/app/worker.go:41 +0x9c
...3 frames elided...
main.loop()
	C:/src/app/worker.go:9 +0x1
created by main.start in goroutine 1
	C:/src/app/worker.go:5 +0x44

goroutine 8 [running]:
	goroutine running on other thread; stack unavailable
created by main.start in goroutine 1
	/app/main.go:5 +0x44

goroutine 9 [chan receive (durable) (leaked), synctest bubble 3]:
main.wait(...)
	/app/main.go:50
created by main.start
	/app/main.go:5 +0x44

goroutine 10 [semacquire (scan), 1 minutes]:
sync.runtime_Semacquire(0xc0000a0008?)
	/usr/local/go/src/runtime/sema.go:71 +0x25
sync.(*WaitGroup).Wait(0xc0000a0000?)
	/usr/local/go/src/sync/waitgroup.go:118 +0x48
main.join(...)
	/app/main.go:60
...additional frames elided...
[originating from goroutine 1]:
main.main()
	/app/main.go:31 +0x25

goroutine 11 [chan receive (nil chan)] {role: worker, "a b": "x\\ty\\u03a3", "k:": "v\\x00"}:
main.nilwait()
	/app/main.go:70 +0x1d
created by main.start in goroutine 1
	/app/main.go:5 +0x44
"""


def goroutines_by_id(text: str) -> dict:
    return {g.id: g for g in parse_goroutine_dump(text).goroutines}


def test_headers_frames_and_footers():
    g = goroutines_by_id(DUMP)
    assert list(g) == [1, 7, 8, 9, 10, 11]

    assert (g[1].state, g[1].locked_to_thread, g[1].wait_minutes) == ("running", True, 0)
    assert g[1].frames[0] == Frame("runtime.gopanic", "/usr/local/go/src/runtime/panic.go", 785)
    assert g[1].frames[1:3] == (Frame("main.(*Server[...]).handle", "/app/main.go", 12),
                                Frame("main.Run[go.shape.int]", "/app/main.go", 20))
    assert g[1].key[0].function == "main.(*Server[...]).handle"
    assert top_function(g[1].frames) == "main.(*Server[...]).handle"

    assert (g[7].state, g[7].wait_minutes, g[7].frames_elided) == ("select", 12, True)
    assert g[7].frames == (Frame("main.worker", "C:/src/app/worker.go", 41),
                           Frame("main.loop", "C:/src/app/worker.go", 9))
    assert g[7].created_by == Frame("main.start", "C:/src/app/worker.go", 5) and g[7].parent_id == 1

    assert g[8].stack_unavailable and g[8].frames == () and g[8].created_by.function == "main.start"

    assert (g[9].state, g[9].durable, g[9].leaked, g[9].synctest_bubble) == ("chan receive", True, True, 3)
    assert g[9].parent_id is None  # Go < 1.21 prints no "in goroutine N"

    assert (g[10].state, g[10].scan, g[10].wait_minutes, g[10].frames_elided) == ("semacquire", True, 1, True)
    assert [f.function for f in g[10].frames] == ["sync.runtime_Semacquire", "sync.(*WaitGroup).Wait", "main.join"]
    assert top_function(g[10].frames) == "sync.(*WaitGroup).Wait"  # the ancestor section is not its stack

    assert g[11].state == "chan receive (nil chan)"  # a reason's own parentheses stay
    assert g[11].labels == (("a b", "x\tyΣ"), ("k:", "v\x00"), ("role", "worker"))


def test_labels_group_by_label_set():
    p = parse_goroutine_dump(DUMP).profile()
    group = p.by_key()[(Frame("main.nilwait", "/app/main.go", 70),)]
    assert group.labels == Counter({(("a b", "x\tyΣ"), ("k:", "v\x00"), ("role", "worker")): 1})


def test_debug1_labels_and_unknown_pcs():
    text = ("goroutine profile: total 5\n"
            "3 @ 0x43b2f6 0x67f87b 0x46b201\n"
            '# labels: {"k":"v", "quote\\"d":"tab\\there"}\n'
            "#\t0x67f87a\tmain.leak+0x1a\t/srv/demo/main.go:17\n\n"
            "2 @ 0x43b2f6 0x67f87b 0x46b201\n"
            "#\t0x67f87a\tmain.leak+0x1a\t\t/srv/demo/main.go:17\n"
            "#\t0x12345\n\n")
    p = parse_goroutine_profile_text(text)
    [group] = p.groups  # the same key: labels do not split a group
    assert group.count == 5
    assert group.labels == Counter({(("k", "v"), ('quote"d', "tab\there")): 3})
    assert group.key == (Frame("main.leak", "/srv/demo/main.go", 17),)  # the unknown PC has no name


@pytest.mark.parametrize("function, hidden", [
    ("runtime.gopark", True), ("runtime.goexit", True), ("runtime.main", True), ("runtime.gopanic", True),
    ("runtime.(*mheap).alloc", True), ("runtime.GC", False), ("runtime.(*Func).Name", False),
    ("runtime.(*mspan).Base", True), ("internal/runtime/syscall.Syscall6", False),
    ("runtime/pprof.writeGoroutine", False), ("main.main", False), ("crosscall2", True), ("", True),
])
def test_frames_hidden_by_the_level_1_traceback(function, hidden):
    assert hidden_by_traceback(function) is hidden


def frames(*functions: str) -> tuple[Frame, ...]:
    return tuple(Frame(f, "x.go", i) for i, f in enumerate(functions))


@pytest.mark.parametrize("stack, key, top", [
    # protobuf / debug=1 view of a channel wait
    (("runtime.gopark", "runtime.chanrecv", "runtime.chanrecv1", "main.wait", "runtime.goexit"),
     ("main.wait",), "main.wait"),
    # Go >= 1.24 mutex wait through internal/sync
    (("runtime.gopark", "runtime.semacquire1", "sync.runtime_SemacquireMutex", "internal/sync.(*Mutex).lockSlow",
      "internal/sync.(*Mutex).Lock", "sync.(*Mutex).Lock", "main.locker", "runtime.goexit"),
     ("sync.runtime_SemacquireMutex", "internal/sync.(*Mutex).lockSlow", "internal/sync.(*Mutex).Lock",
      "sync.(*Mutex).Lock", "main.locker"), "sync.(*Mutex).Lock"),
    # a syscall: leading internal/runtime frames are hidden by debug=1, so by the key too
    (("internal/runtime/syscall.Syscall6", "syscall.Syscall", "main.read"), ("syscall.Syscall", "main.read"),
     "syscall.Syscall"),
    # a goroutine entirely inside the runtime keeps no key frames; the leaf names it
    (("runtime.gopark", "runtime.forcegchelper"), (), "runtime.gopark"),
    # exported runtime functions at the top are hidden by debug=1, in the middle by neither
    (("runtime.GC", "main.collect", "runtime.Callers", "main.f"), ("main.collect", "runtime.Callers", "main.f"),
     "main.collect"),
])
def test_stack_key_and_top_function(stack, key, top):
    fs = frames(*stack)
    assert [f.function for f in stack_key(fs)] == list(key)
    assert top_function(fs) == top


WAIT = ("runtime.gopark", "runtime.netpollblock", "internal/poll.runtime_pollWait", "internal/poll.(*pollDesc).wait",
        "internal/poll.(*pollDesc).waitRead", "internal/poll.(*FD).Read", "net.(*netFD).Read", "net.(*conn).Read")


@pytest.mark.parametrize("stack, place", [
    ((*WAIT, "main.readRaw", "runtime.goexit"), "main.readRaw"),
    ((*WAIT, "bufio.(*Reader).fill", "bufio.(*Reader).ReadSlice", "main.readLines"), "main.readLines"),
    ((*WAIT, "io.ReadAtLeast", "io.ReadFull", "main.readFrames"), "main.readFrames"),
    ((*WAIT, "crypto/tls.(*atLeastReader).Read", "crypto/tls.(*Conn).readRecord", "crypto/tls.(*Conn).Read",
      "net/http.(*connReader).backgroundRead"), "net/http.(*connReader).backgroundRead"),
    (("runtime.gopark", "runtime.netpollblock", "internal/poll.runtime_pollWait", "internal/poll.(*FD).Accept",
      "net.(*netFD).accept", "net.(*TCPListener).accept", "net.(*TCPListener).Accept", "main.serve"), "main.serve"),
    (("runtime.gopark", "runtime.semacquire1", "sync.runtime_SemacquireMutex", "internal/sync.(*Mutex).lockSlow",
      "sync.(*Mutex).Lock", "main.locker"), "main.locker"),
    (("runtime.gopark", "time.Sleep", "main.poll"), "main.poll"),
    (("runtime.gopark", "runtime.chanrecv1", "main.wait"), "main.wait"),
    (("runtime.gopark", "runtime.forcegchelper"), None),
])
def test_the_telling_frame_is_the_first_outside_the_plumbing(stack, place):
    found = telling_frame(frames(*stack))
    assert (found.function if found else None) == place


def test_a_group_with_nothing_but_plumbing_is_labelled_by_its_creator_else_its_top():
    sleeping = frames("runtime.gopark", "time.Sleep")
    [dumped] = GoroutineDump((Goroutine(1, "sleep", frames=sleeping, created_by=Frame("main.start", "a.go", 3)),)
                             ).profile().groups
    assert (dumped.label, dumped.label_frame, dumped.state) == ("created by main.start", None, "sleep")
    [profiled] = groups_from_stacks([(1, sleeping, None)])
    assert (profiled.label, profiled.label_frame) == ("time.Sleep", sleeping[1])  # no creator: the top


def test_groups_from_stacks_merges_equal_keys_and_sorts_biggest_first():
    park = frames("runtime.gopark", "runtime.chanrecv1", "main.wait")
    groups = groups_from_stacks([
        (2, park, None),
        (5, frames("main.busy"), {"k": "v"}),
        (4, park[2:], (("k", "v"),)),  # a debug=2 view of the same stack
    ])
    assert [(g.count, g.top_function) for g in groups] == [(6, "main.wait"), (5, "main.busy")]
    assert groups[0].labels == Counter({(("k", "v"),): 4}) and groups[0].leaf.function == "runtime.gopark"
    leaked = profile_from_stacks([(3, park, None)], kind=KIND_GOROUTINELEAK)
    assert (leaked.total, leaked.groups[0].leaked) == (3, 3)


# --- truncated and bad input ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_dump_cut_anywhere_keeps_every_complete_goroutine(data):
    text = sample("pprof-goroutine-debug2.txt")
    full = parse_goroutine_dump(text).goroutines
    cut = data.draw(st.integers(text.index("\n\n") + 2, len(text)))
    dump = parse_goroutine_dump(text[:cut])
    n = len(dump.goroutines)
    assert dump.goroutines[: n - 1] == full[: n - 1]
    last = dump.goroutines[-1]
    assert last.id == full[n - 1].id and last.frames == full[n - 1].frames[: len(last.frames)]
    if not text[:cut].endswith("\n"):
        assert dump.truncated and n < len(full) or cut == len(text)


def test_a_cut_mid_frame_drops_the_partial_goroutine():
    text = sample("pprof-goroutine-debug2.txt")
    cut = text.index("goroutine 8 [IO wait]")
    cut = text.index("net.(*TCPListener).accept", cut) + 7
    dump = parse_goroutine_dump(text[:cut])
    assert dump.truncated and [g.id for g in dump.goroutines] == [146, 1, 19, 7]
    after_function_line = parse_goroutine_dump(text[: text.index("\n", cut) + 1])
    assert after_function_line.truncated and len(after_function_line.goroutines) == 4


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_debug1_profile_cut_anywhere_keeps_complete_records(data):
    text = sample("pprof-goroutine-debug1.txt")
    full = parse_goroutine_profile_text(text).by_key()
    cut = data.draw(st.integers(text.index("\n") + 1, len(text)))
    p = parse_goroutine_profile_text(text[:cut])
    assert p.total == 132
    assert all(key in full and g.count <= full[key].count for key, g in p.by_key().items())
    assert p.truncated == (cut < len(text))


HTML = b"<!DOCTYPE html><html><body><h1>404 page not found</h1></body></html>\n"


@pytest.mark.parametrize("parse", [parse_goroutine_dump, parse_goroutine_profile_text])
@pytest.mark.parametrize("data", [
    HTML, bytes(range(256)) * 8, b"", b"\n\n\n", "threadcreate profile: total 6\n6 @\n#\t0x0\n\n",
    "goroutine profile: total 1\n1 @ 0x1\nnot a frame\n\n", "hello\ngoroutine 1 [running]:\nmain.main()\n",
    "x" * (80 * 1024 * 1024),
])
def test_garbage_is_a_one_line_parse_error(parse, data):
    with pytest.raises(GoroutineParseError) as info:
        parse(data)
    assert isinstance(info.value, GotopError) and "\n" not in str(info.value)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name, parse, result_type", [
    ("pprof-goroutine-debug2.txt", parse_goroutine_dump, GoroutineDump),
    ("pprof-goroutineleak-debug2.txt", parse_goroutine_dump, GoroutineDump),
    ("gops-stack.txt", parse_goroutine_dump, GoroutineDump),
    ("pprof-goroutine-debug1.txt", parse_goroutine_profile_text, GoroutineProfile),
    ("pprof-goroutineleak-debug1.txt", parse_goroutine_profile_text, GoroutineProfile),
])
def test_fuzzed_samples_parse_or_raise_the_parse_error(name, parse, result_type):
    @FUZZ
    @given(data=mutated((SAMPLES / name).read_bytes()))
    def check(data):
        try:
            result = parse(data)
        except GoroutineParseError as exc:
            assert "\n" not in str(exc)
        else:
            assert isinstance(result, result_type)
            if isinstance(result, GoroutineDump):
                assert result.profile().total == len(result.goroutines)

    check()


@FUZZ
@given(st.text(max_size=300))
def test_fuzzed_headers_never_crash(line):
    try:
        parse_goroutine_dump(f"goroutine 1 [{line}:\nmain.main()\n\t/a.go:1\n")
        parse_goroutine_dump(f"goroutine 1 [running] {line}:\n{line}\n\t{line}\n")
    except GoroutineParseError:
        pass


# --- live targets ---------------------------------------------------------------------------------


def live_sources(t, tmp_path: Path) -> dict[str, GoroutineProfile]:
    pb = tmp_path / "goroutine.pb.gz"
    pb.write_bytes(http_get(t.http_addr, "/debug/pprof/goroutine"))
    return {
        "debug1": parse_goroutine_profile_text(http_get(t.http_addr, "/debug/pprof/goroutine?debug=1")),
        "debug2": parse_goroutine_dump(http_get(t.http_addr, "/debug/pprof/goroutine?debug=2")).profile(),
        "agent": parse_goroutine_dump(agent_request(t.agent_port, b"\x01")).profile(),
        "protobuf": profile_from_stacks(pprof_raw_stacks(pb)),
    }


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_live_park_group_is_the_same_from_every_source(go_target, tmp_path, toolchain):
    t = go_target("agentpprof", toolchain=toolchain, args=["-workload", "park", "-n", "37"])
    sources = live_sources(t, tmp_path)
    parks = {name: [g for g in p.groups if g.top_function == PARKED] for name, p in sources.items()}
    assert all(len(found) == 1 and found[0].count == 37 for found in parks.values()), parks
    keys = {found[0].key for found in parks.values()}
    assert len(keys) == 1
    [key] = keys
    assert key[0].function == PARKED and key[0].file.endswith("internal/workload/basic.go")
    for name in ("debug2", "agent"):
        park = parks[name][0]
        assert park.states == Counter({"chan receive": 37}), name
        assert park.created_by == f"{WORKLOAD}.park" and len(set(park.goroutine_ids)) == 37
    assert parks["protobuf"][0].leaf.function == "runtime.gopark"
    # The snapshots are taken one after the other: a goroutine caught at another
    # line in one of them (main's accept loop, the agent's listener, under load)
    # changes its key. The groups every source shows must agree on counts, and
    # include park.
    views = [steady(p) for p in sources.values()]
    common = set.intersection(*(set(view) for view in views))
    assert key in common, views
    assert all(view[k] == views[0][k] for view in views for k in common), views


def test_live_goroutineleak_go127(go_target, tmp_path):
    t = go_target("agentpprof", toolchain="go1.27", args=["-workload", "park", "-n", "37"])
    before = parse_goroutine_dump(http_get(t.http_addr, "/debug/pprof/goroutine?debug=2")).profile()
    [park] = [g for g in before.groups if g.top_function == PARKED]
    assert park.leaked == 0

    # park's channel is reachable only from the parked goroutines: the leak GC proves all 37 leaked
    leak = parse_goroutine_profile_text(http_get(t.http_addr, "/debug/pprof/goroutineleak?debug=1"))
    assert (leak.kind, leak.total) == (KIND_GOROUTINELEAK, 37)
    [leaked] = leak.groups
    assert (leaked.key, leaked.count, leaked.leaked) == (park.key, 37, 37)

    pb = tmp_path / "leak.pb.gz"
    pb.write_bytes(http_get(t.http_addr, "/debug/pprof/goroutineleak"))
    proto = profile_from_stacks(pprof_raw_stacks(pb), kind=KIND_GOROUTINELEAK)
    assert [(g.key, g.leaked) for g in proto.groups] == [(park.key, 37)]

    for text in (http_get(t.http_addr, "/debug/pprof/goroutine?debug=2"),
                 http_get(t.http_addr, "/debug/pprof/goroutineleak?debug=2")):
        after = parse_goroutine_dump(text).profile().by_key()[park.key]
        assert (after.leaked, after.states) == (37, Counter({"chan receive": 37}))


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_live_text_profile_with_learnt_runtime_frames_is_the_protobufs(go_target, toolchain):
    """Blocked in a channel send, a receive and a select, the leaking groups' waits show only
    in runtime frames the text form hides; learnt from a protobuf profile taken before, they
    come back, and the groups both forms show are the same, frame for frame."""
    t = go_target("pprofonly", toolchain=toolchain, args=["-workload", "leak-all", "-n", "50"])
    waits = {"chan send", "chan receive", "select"}

    def learnt_then_text():
        """A protobuf that shows the waits, then the text form; both again while the text names a
        hidden runtime frame the protobuf did not (a goroutine that moved between the two, as on a
        loaded machine: gotop then asks for a protobuf again, Target._pprof_groups)."""
        profile = parse_profile(http_get(t.http_addr, "/debug/pprof/goroutine"))
        if not waits <= {g.state for g in profile_from_pprof(profile).groups}:
            return None
        text = http_get(t.http_addr, "/debug/pprof/goroutine?debug=1")
        restored = parse_goroutine_profile_text(text, runtime_frames(profile))
        return None if restored.unresolved else (profile, text, restored)

    learnt_from, text, restored = asyncio.run(eventually(learnt_then_text))
    bare = parse_goroutine_profile_text(text)
    assert not waits & {g.state for g in bare.groups} and bare.unresolved
    assert waits <= {g.state for g in restored.groups}
    # Both forms are of the goroutines as they were: they left the same stacks since.
    before, after = profile_from_pprof(learnt_from).by_key(), restored.by_key()
    common = set(before) & set(after)
    assert {before[key].state for key in common} >= waits
    assert all(after[key].frames == before[key].frames for key in common)


@pytest.mark.parametrize("toolchain", ["go1.27", "go1.19"])
def test_live_labels(go_target, tmp_path, toolchain):
    t = go_target("agentpprof", toolchain=toolchain, args=["-workload", "labelled", "-n", "5"],
                  env={"GODEBUG": "tracebacklabels=1"})
    want = Counter({(("note", "needs quoting: yes"), ("role", "worker")): 5})
    sources = live_sources(t, tmp_path)
    for name, p in sources.items():
        [group] = [g for g in p.groups if g.top_function == f"{WORKLOAD}.labelledHere"]
        assert group.count == 5
        # debug=2 headers carry labels from Go 1.27 (GODEBUG tracebacklabels); the gops dump is debug=2
        has_labels = name in ("debug1", "protobuf") or toolchain == "go1.27"
        assert group.labels == (want if has_labels else Counter()), name


def test_live_net_readers_are_told_apart_by_the_function_that_reads(go_target):
    t = go_target("pprofonly", args=["-workload", "net-readers", "-n", "3"])
    readers = {f"{WORKLOAD}.{name}": count
               for name, count in {"readLines": 3, "readFrames": 3, "readRaw": 3, "acceptForever": 1}.items()}

    async def waiting_groups() -> dict[str, GoroutineGroup]:
        async with Target.open(f"http://{t.http_addr}") as target:
            async def fetch() -> None:
                nonlocal profile
                profile = await target.goroutine_profile()
            profile = None
            await fetch()

            def all_blocked() -> dict[str, GoroutineGroup] | None:
                groups = {g.label: g for g in profile.groups if g.label in readers}
                waiting = {label: g for label, g in groups.items() if g.state == "IO wait"}
                return waiting if {k: g.count for k, g in waiting.items()} == readers else None
            return await eventually(all_blocked, pause=fetch)

    groups = asyncio.run(waiting_groups())
    for label, group in groups.items():
        assert group.top_function == "internal/poll.(*pollDesc).wait", label  # what the rows used to say
        assert group.label_frame.file.endswith(("netreaders.go", "leak_resources.go")), group.label_frame
