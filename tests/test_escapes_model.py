"""The parser of the compiler's escape diagnostics, on real -m=2 output of
tests/targets/escapes from Go 1.19, 1.26 and 1.27.3 (tests/samples/escapes-go*.txt),
on hand-made lines for what those do not show, and fuzzed.

That `gotop escapes` finds each cause at its line with each toolchain, built now,
is in test_escapes.py; these check the formats themselves, without a build."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutated

from gotop.model.escapes import Allocation, Cause, parse_escapes

SAMPLES = Path(__file__).parent / "samples"
TARGET = Path(__file__).parent / "targets" / "escapes" / "main.go"
VERSIONS = ("1.19", "1.26", "1.27")


def marked_lines() -> dict[int, Cause]:
    """The target's lines marked `// escape: CAUSE`."""
    lines = TARGET.read_text().splitlines()
    return {n: Cause(m[1]) for n, line in enumerate(lines, 1) if (m := re.search(r"// escape: (\w+)$", line))}


def joined_to(directory: str):
    """A Resolve: relative names joined to `directory`."""
    return lambda package, file: posixpath.normpath(posixpath.join(directory, file))


def sample(version: str) -> list[str]:
    return (SAMPLES / f"escapes-go{version}.txt").read_text().splitlines()


def in_src(package: str, file: str) -> str:
    """A Resolve: the target's files in /src (the sample of Go 1.26 names them "escapes/main.go", replayed
    from the go command's cache of a build in tests/targets; the others "./main.go")."""
    assert package == "gotop.test/targets/escapes"
    return "/src/" + posixpath.basename(file)


def by_line(version: str) -> dict[int, Allocation]:
    return {a.line: a for a in parse_escapes(sample(version), in_src) if a.file == "/src/main.go"}


@pytest.mark.parametrize("version", VERSIONS)
def test_each_marked_line_has_its_cause(version):
    found = by_line(version)
    assert {line: found[line].cause for line in marked_lines()} == marked_lines()


@pytest.mark.parametrize("version", VERSIONS)
def test_the_flow_is_the_compilers_and_the_why_names_its_step(version):
    found = by_line(version)
    line = {cause: n for n, cause in marked_lines().items()}
    returned = found[line[Cause.RETURNED]]
    assert (returned.what, returned.expression) == ("moved to heap: r", "r")
    arrow = "=" if version == "1.19" else "←"
    assert returned.flow[0] == f"  flow: ~r0 {arrow} &r:"
    assert re.fullmatch(r"    from return &r \(return\) at (\./|escapes/)main\.go:\d+:2", returned.flow[-1])
    assert returned.why == "returned to the caller (return &r)"
    assert found[line[Cause.STORED]].why == "stored in a global or a heap object (global = r)"
    assert found[line[Cause.INTERFACE]].why == \
        "converted to an interface, then passed to a call that keeps it (keep(v))"
    assert found[line[Cause.CAPTURED]].why == "captured by a closure"
    assert found[line[Cause.CAPTURED] + 1].cause == Cause.RETURNED  # the closure itself
    # Newer releases name the function in the header; Go 1.19 does not.
    assert returned.function == ("" if version == "1.19" else "returned")


def test_a_variable_size_make_that_does_not_escape_is_on_the_heap_above_32_bytes():
    """Go 1.25+ says "does not escape" of make([]byte, n) (a 32-byte stack buffer
    first); Go 1.19 says it escapes for its size. Both are the same cause."""
    line = next(n for n, cause in marked_lines().items() if cause == Cause.NON_CONSTANT_SIZE)
    old, new = by_line("1.19")[line], by_line("1.26")[line]
    assert (old.what, old.cause, old.why) == ("make([]byte, n) escapes to heap", Cause.NON_CONSTANT_SIZE,
                                             "size not constant")
    assert (new.what, new.cause) == ("make([]byte, n) does not escape", Cause.NON_CONSTANT_SIZE)
    assert "above 32 bytes" in new.why and new.flow == ()


def test_parameters_inlining_and_unknown_lines_are_not_allocations():
    lines = [
        "# example.com/m",
        "./a.go:3:6: can inline f with cost 4 as: func(*int) { sink = p }",
        "./a.go:3:8: parameter p leaks to {heap} with derefs=0:",
        "./a.go:3:8:   flow: {heap} = p:",
        "./a.go:3:8:     from sink = p (assign) at ./a.go:3:30",
        "./a.go:3:8: leaking param: p",
        "./a.go:9:7: make([]byte, 10) does not escape",  # constant size: on the stack
        "./a.go:10:7: make([]func(a, b int), 16) does not escape",
        "./a.go:11:2: main capturing by ref: n (addr=false assign=true width=8)",
        "not a diagnostic: 1:2: moved to heap: x",
        "",
    ]
    assert parse_escapes(lines) == ()


def test_two_flows_of_one_value_are_one_allocation_with_the_stronger_cause():
    """Go 1.19 explains a global make([]byte, n) twice: stored, and for its size."""
    lines = [
        "./a.go:35:13: make([]byte, n) escapes to heap:",
        "./a.go:35:13:   flow: {heap} = &{storage for make([]byte, n)}:",
        "./a.go:35:13:     from make([]byte, n) (spill) at ./a.go:35:13",
        "./a.go:35:13:     from sink = make([]byte, n) (assign) at ./a.go:35:7",
        "./a.go:35:13: make([]byte, n) escapes to heap:",
        "./a.go:35:13:   flow: {heap} = &{storage for make([]byte, n)}:",
        "./a.go:35:13:     from make([]byte, n) (non-constant size) at ./a.go:35:13",
        "./a.go:35:13: make([]byte, n) escapes to heap",
    ]
    [only] = parse_escapes(lines, joined_to("/m"))
    assert (only.file, only.line, only.column, only.cause) == ("/m/a.go", 35, 13, Cause.NON_CONSTANT_SIZE)
    assert len(only.flow) == 5  # both flows


def test_verdicts_that_name_their_value_otherwise_than_its_header():
    """Lines of klauspost/compress's (Go 1.26): an inlined function's appends, all
    verdicts "append"; an inlined make whose verdict folds the constant its header names;
    a variable-size make that stays at a place where something else escapes."""
    lines = [
        "flate/inflate.go:688:32: append(dst, dd.hist[:dd.wrPos]...) escapes to heap in (*decompressor).finishBlock:",
        "flate/inflate.go:688:32:   flow: {heap} ← &{storage for append(dst, dd.hist[:dd.wrPos]...)}:",
        "flate/inflate.go:688:32:     from f.cpBuf = ~r0 (assign) at flate/inflate.go:688:11",
        "flate/inflate.go:688:32: append(dst, dd.hist[dd.wrPos:]...) escapes to heap in (*decompressor).finishBlock:",
        "flate/inflate.go:688:32:   flow: ~r0 ← &{storage for append(dst, dd.hist[dd.wrPos:]...)}:",
        "flate/inflate.go:688:32:     from return append(dst, dd.hist[dd.wrPos:]...) (return) at inflate.go:688:32",
        "flate/inflate.go:688:32: append escapes to heap",
        "flate/inflate.go:688:32: append escapes to heap",
        "flate/inflate.go:824:13: make([]byte, size) escapes to heap in (*decompressor).Reset:",
        "flate/inflate.go:824:13:   flow: {heap} ← &{storage for make([]byte, size)}:",
        "flate/inflate.go:824:13:     from dd.hist = make([]byte, size) (assign) at flate/inflate.go:824:13",
        "flate/inflate.go:824:13: make([]byte, 32768) escapes to heap",
        "api.go:816:35: string(strconv.b) escapes to heap in marshalPointJSON:",
        "api.go:816:35:   flow: ~r0 ← &{storage for string(strconv.b)}:",
        "api.go:816:35:     from return string(strconv.b) (return) at api.go:816:35",
        "api.go:816:35: make([]byte, 0, max(strconv.prec + 4, 24)) does not escape",
        "api.go:816:35: string(strconv.b) escapes to heap",
    ]
    found = [(a.line, a.expression, a.cause) for a in parse_escapes(lines)]
    assert found == [
        (816, "make([]byte, 0, max(strconv.prec + 4, 24))", Cause.NON_CONSTANT_SIZE),
        (816, "string(strconv.b)", Cause.RETURNED),
        (688, "append(dst, dd.hist[:dd.wrPos]...)", Cause.STORED),
        (688, "append(dst, dd.hist[dd.wrPos:]...)", Cause.RETURNED),
        (824, "make([]byte, size)", Cause.STORED),
    ]


def test_where_a_flow_ends():
    def cause(expression: str, *flow: str) -> tuple[Cause, str]:
        lines = [f"/m/a.go:5:2: {expression} escapes to heap:", *(f"/m/a.go:5:2: {line}" for line in flow),
                 f"/m/a.go:5:2: {expression} escapes to heap"]
        [found] = parse_escapes(lines)
        return found.cause, found.why

    assert cause("&T{}", "  flow: {heap} ← &{storage for &T{}}:", "    from &T{} (spill) at a.go:5:2",
                 "    from ch <- (&T{}) (send) at a.go:5:5") == (Cause.SENT, "sent on a channel (ch <- (&T{}))")
    assert cause("func literal", "  flow: {heap} ← &{storage for func literal}:",
                 "    from func literal (spill) at a.go:5:2") == (Cause.GOROUTINE, "a closure run by a go statement")
    assert cause("s + u", "  flow: {heap} ← &{storage for s + u}:", "    from s + u (spill) at a.go:5:2",
                 "    from sink = s + u (assign) at a.go:5:1")[0] == Cause.STORED  # maybe a concatenation
    assert cause("x + 1000", "  flow: {heap} ← &{storage for x + 1000}:",
                 "    from f(x + 1000) (call parameter) at a.go:5:1")[0] == Cause.INTERFACE
    assert cause("t.M", "  flow: {heap} ← &{storage for t.M}:",
                 "    from sink = t.M (assign) at a.go:5:1")[0] == Cause.STORED  # maybe a method value
    assert cause("new([1 << 20]byte)", "  flow: {heap} ← &{storage for new([1 << 20]byte)}:",
                 "    from new([1 << 20]byte) (too large for stack) at a.go:5:2")[0] == Cause.TOO_LARGE
    assert cause("&T{}", "  flow: {heap} ← *{temp}:") == (Cause.OTHER, "escapes")
    # Into a value that is itself on the heap (gops's cobra.Command literals), into an interface's box.
    assert cause("func literal", "  flow: {storage for &cobra.Command{...}} ← &{storage for func literal}:",
                 "    from func literal (spill) at main.go:17:24",
                 "    from cobra.Command{...} (struct literal element) at main.go:17:24") == \
        (Cause.STORED, "stored in a global or a heap object (cobra.Command{...})")
    assert cause("s + strings.Repeat(\" \", n)", "  flow: {storage for ~r0} ← ~r0:",
                 "    from ~r0 (interface-converted) at root.go:52:22") == \
        (Cause.INTERFACE, "converted to an interface (~r0)")


def test_an_allocation_survives_json():
    for found in parse_escapes(sample("1.27"), in_src):
        assert Allocation.from_json(found.to_json()) == found
    with pytest.raises((ValueError, KeyError, TypeError)):
        Allocation.from_json(parse_escapes(sample("1.27"))[0].to_json() | {"line": "35"})


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("version", VERSIONS)
def test_fuzzed_output_parses_to_allocations(version):
    @FUZZ
    @given(data=mutated((SAMPLES / f"escapes-go{version}.txt").read_bytes()))
    def check(data):
        for found in parse_escapes(data.decode("utf-8", "replace").splitlines(), joined_to("/src")):
            assert found.line >= 0 and found.column >= 0 and found.file and found.expression
            assert isinstance(found.cause, Cause) and found.why
            assert Allocation.from_json(found.to_json()) == found

    check()


@FUZZ
@given(st.lists(st.text(max_size=80), max_size=8))
def test_fuzzed_lines_never_crash(parts):
    lines = [f"./a.go:1:2: {p}" for p in parts] + [f"./a.go:1:2:   flow: {p}:" for p in parts] + parts
    for found in parse_escapes(lines):  # each where a line said
        assert any(line.startswith(f"{found.file}:{found.line}:{found.column}: ") for line in lines)
