"""The Go compiler's escape analysis (`go build -gcflags=-m=2`) -> heap allocations (pure).

At -m=2 the compiler says, for each value it puts on the heap, where and what,
and the flow that made it escape, one line each, every line prefixed by a
position:

    ./main.go:35:2: r escapes to heap in returned:        (the header; Go 1.19 does not name the function)
    ./main.go:35:2:   flow: ~r0 ← &r:                      (Go 1.19: "=")
    ./main.go:35:2:     from &r (address-of) at ./main.go:37:9
    ./main.go:35:2:     from return &r (return) at ./main.go:37:2
    ./main.go:35:2: moved to heap: r                       (the verdict: a variable)
    ./main.go:58:13: make([]byte, n) escapes to heap       (the verdict: any other allocation)

The header and its flow come before the verdict; a value may get two headers
(two flows), the closure the compiler makes for a go statement gets a header
alone, and a verdict may name the value otherwise than its header (Go 1.26's
"append escapes to heap"; an inlined call's constant). Lines about
parameters ("parameter p leaks to {heap} ...:", "leaking param: p") and
inlining are not allocations and are skipped, as is any line this module does
not know. Since Go 1.25 a `make([]T, n)` whose size is not constant and which
escapes no other way gets a stack buffer of 32 bytes and is allocated on the
heap above that; the compiler then says it "does not escape": it is reported
here, as its size is the cause.

Each allocation gets one cause, the first of: too large for the stack, size not
constant, captured by a closure, converted to an interface (the value printed
is not itself an allocation: a name, a call, an index, a literal...; or its
flow ends in an interface conversion), then where its flow ends: returned, sent
on a channel, passed to a call that keeps it, stored in a global or a heap
object (or in another value put on the heap), run by a go statement.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class Cause(StrEnum):
    """Why a value is on the heap (the JSON value is the enum's)."""

    TOO_LARGE = "too_large"
    NON_CONSTANT_SIZE = "non_constant_size"
    CAPTURED = "captured"
    INTERFACE = "interface"
    RETURNED = "returned"
    SENT = "sent"
    CALL = "call"
    STORED = "stored"
    GOROUTINE = "goroutine"
    OTHER = "other"


CAUSE_WORDS = {
    Cause.TOO_LARGE: "too large for the stack",
    Cause.NON_CONSTANT_SIZE: "size not constant",
    Cause.CAPTURED: "captured by a closure",
    Cause.INTERFACE: "converted to an interface",
    Cause.RETURNED: "returned to the caller",
    Cause.SENT: "sent on a channel",
    Cause.CALL: "passed to a call that keeps it",
    Cause.STORED: "stored in a global or a heap object",
    Cause.GOROUTINE: "a closure run by a go statement",
    Cause.OTHER: "escapes",
}

# Of what parse_escapes finds and of Allocation.to_json: a change to either must bump it
# (gotop's cache of analyses keeps parsed allocations, sources/escapes.py).
FORMAT_VERSION = 1
VARIABLE_MAKE_NOTE = "on the heap above 32 bytes (Go 1.25+ keeps smaller ones on the stack)"
MAX_LINE_CHARS = 64 * 1024  # a longer line is no diagnostic of the compiler's (and would cost the regexes)


@dataclass(frozen=True, slots=True)
class Allocation:
    """One value the compiler puts on the heap."""

    file: str  # as the compiler names it, resolved when relative (parse_escapes)
    line: int
    column: int
    what: str  # the compiler's verdict: "moved to heap: r", "&record{} escapes to heap"
    expression: str  # what is allocated: "r", "&record{}", "make([]byte, n)"
    function: str  # the function it is in, when the compiler says (newer releases do); else ""
    cause: Cause
    why: str  # the cause in plain words, with the step that tells where the value went
    flow: tuple[str, ...]  # the compiler's flow lines, as it wrote them (without the position)

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column, "what": self.what,
                "expression": self.expression, "function": self.function or None, "cause": self.cause.value,
                "why": self.why, "flow": list(self.flow)}

    @classmethod
    def from_json(cls, data: dict) -> Allocation:
        """The inverse of to_json; ValueError (or KeyError, TypeError) if a field is not what it must be."""
        fields = (data["file"], data["what"], data["expression"], data["why"])
        numbers = (data["line"], data["column"])
        flow, function = data["flow"], data["function"] or ""
        if not (all(isinstance(f, str) for f in (*fields, function)) and all(type(n) is int for n in numbers)
                and isinstance(flow, list) and all(isinstance(line, str) for line in flow)):
            raise ValueError("an allocation with a field of the wrong type")
        return cls(data["file"], *numbers, data["what"], data["expression"], function, Cause(data["cause"]),
                   data["why"], tuple(flow))


# -- the lines ---------------------------------------------------------------------------------------

_POSITION = re.compile(r"(?P<file>[^\n]+?):(?P<line>\d{1,9}):(?P<column>\d{1,9}): (?P<message>[^\n]*)")
_MOVED = re.compile(r"moved to heap: (?P<expr>.+)")
_ESCAPES = re.compile(r"(?P<expr>.+) escapes to heap")
_HEADER = re.compile(r"(?P<expr>.+?) escapes to heap(?: in (?P<function>.+))?:")
_PARAMETER_HEADER = re.compile(r"parameter .+ leaks to .+:")
_FLOW = re.compile(r"  flow: (?P<destination>.*?) (?:=|←) (?P<source>.*):")
_STEP = re.compile(r"    from (?P<expr>.*) \((?P<why>[a-z][a-z -]*)\) at .+")
_STAYS = re.compile(r"(?P<expr>make\(\[\].+\)) does not escape")


@dataclass
class _Chain:
    """A header's flow: its lines as written, and each flow's destination and steps."""

    function: str
    lines: list[str]
    flows: list[tuple[str, list[tuple[str, str]]]]  # (destination, [(expression, explanation)])


_Key = tuple[str, int, int, str]  # file, line, column, expression
# (the import path of the package being compiled, a file name as printed) -> the file's path
Resolve = Callable[[str, str], str]


def parse_escapes(lines: Iterable[str], resolve: Resolve | None = None) -> tuple[Allocation, ...]:
    """The heap allocations in the compiler's -m=2 output (`lines`, with or
    without their line ends), by file, line and column. `resolve` names each
    file the output names relatively (the go command prints them relative to
    where it ran, or to where the build it replays from its cache ran), given
    the package of the "# import/path" line above. Never raises on bad input: a
    line this parser does not know is skipped."""
    chains: dict[_Key, _Chain] = {}
    verdicts: dict[_Key, str] = {}  # key -> the verdict line, in the order the compiler gave them
    current: tuple[tuple[str, int, int], _Chain | None] | None = None  # the open header: its position, its chain
    package = ""
    resolved: dict[str, str] = {}
    for raw in lines:
        text = raw.rstrip("\r\n")
        if text.startswith("# "):
            package = text[2:].split(" ", 1)[0]
            resolved.clear()
            continue
        if len(text) > MAX_LINE_CHARS or (match := _POSITION.fullmatch(text)) is None:
            continue
        file = match["file"]
        if resolve is not None and not posixpath.isabs(file):
            file = resolved[file] if file in resolved else resolved.setdefault(file, resolve(package, file))
        position = (file, int(match["line"]), int(match["column"]))
        message = match["message"]
        if message.startswith("  "):  # a flow line: it belongs to the open header at the same position
            if current is not None and current[0] == position and current[1] is not None:
                _add_flow_line(current[1], message)
            continue
        current = None
        if (header := _HEADER.fullmatch(message)) is not None:
            key = (*position, header["expr"])
            chain = chains.setdefault(key, _Chain(header["function"] or "", [], []))
            current = (position, chain)
        elif _PARAMETER_HEADER.fullmatch(message):
            current = (position, None)  # its flow lines are not an allocation's
        elif (moved := _MOVED.fullmatch(message)) is not None:
            verdicts.setdefault((*position, moved["expr"]), message)
        elif (escapes := _ESCAPES.fullmatch(message)) is not None:
            verdicts.setdefault((*position, escapes["expr"]), message)
        elif (stays := _STAYS.fullmatch(message)) is not None and not _constant_size(stays["expr"]):
            verdicts.setdefault((*position, stays["expr"]), message)
    # Each header is an allocation, named by its verdict if one names the same value; a verdict
    # with no header at its place is one too (an inlined call's verdict may name the value
    # otherwise, make([]byte, 32768) for make([]byte, size); several appends just "append"),
    # and so is a variable-size make, which has none.
    explained = {key[:3] for key in chains}
    found = [_allocation(key, verdicts.get(key, f"{key[3]} escapes to heap"), chain) for key, chain in chains.items()]
    found += [_allocation(key, what, None) for key, what in verdicts.items()
              if key[:3] not in explained or what.endswith(" does not escape")]
    return tuple(sorted(found, key=lambda a: (a.file, a.line, a.column, a.expression)))


def _add_flow_line(chain: _Chain, message: str) -> None:
    if (flow := _FLOW.fullmatch(message)) is not None:
        chain.flows.append((flow["destination"], []))
    elif (step := _STEP.fullmatch(message)) is not None and chain.flows:
        chain.flows[-1][1].append((step["expr"], step["why"]))
    else:
        return
    chain.lines.append(message)


def _allocation(key: _Key, what: str, chain: _Chain | None) -> Allocation:
    file, line, column, expression = key
    cause, why = _cause(what, expression, chain)
    return Allocation(file, line, column, what, expression, chain.function if chain else "", cause, why,
                      tuple(chain.lines) if chain else ())


# -- the cause -------------------------------------------------------------------------------------


def _cause(what: str, expression: str, chain: _Chain | None) -> tuple[Cause, str]:
    if what.endswith(" does not escape"):  # a make of variable size (Go 1.25+: see the module doc)
        return Cause.NON_CONSTANT_SIZE, f"{CAUSE_WORDS[Cause.NON_CONSTANT_SIZE]}: {VARIABLE_MAKE_NOTE}"
    flows = chain.flows if chain else []
    explanations = {why for _, steps in flows for _, why in steps}
    for explanation, cause in (("too large for stack", Cause.TOO_LARGE), ("non-constant size", Cause.NON_CONSTANT_SIZE),
                               ("captured by a closure", Cause.CAPTURED)):
        if explanation in explanations:
            return cause, CAUSE_WORDS[cause]
    destination, telling = _where(flows)
    if destination == Cause.INTERFACE or _is_converted_value(what, expression):
        then = f", then {CAUSE_WORDS[destination]}" if destination not in _NO_WHERE else ""
        return Cause.INTERFACE, CAUSE_WORDS[Cause.INTERFACE] + then + telling
    if destination == Cause.OTHER and chain is None:
        return Cause.OTHER, "escapes (the compiler gave no flow: build with -gcflags=-m=2)"
    if destination == Cause.GOROUTINE and expression != "func literal":
        destination = Cause.OTHER
    return destination, CAUSE_WORDS[destination] + telling


_NO_WHERE = (Cause.INTERFACE, Cause.OTHER, Cause.GOROUTINE)  # nothing to add to "converted to an interface"


def _where(flows: list[tuple[str, list[tuple[str, str]]]]) -> tuple[Cause, str]:
    """Where the value's flow ends, and the compiler's step that says so (" (global = r)")."""
    if not flows:
        return Cause.OTHER, ""
    destination = flows[-1][0]
    steps = [step for _, flow_steps in flows for step in flow_steps]
    expression, explanation = steps[-1] if steps else ("", "")
    telling = f" ({expression})" if expression else ""
    if explanation == "interface-converted":  # into an interface's box: what becomes of the box is its own flow
        return Cause.INTERFACE, telling
    if re.fullmatch(r"~[rR]\d+", destination) or explanation == "return":
        return Cause.RETURNED, telling
    if explanation == "send":
        return Cause.SENT, telling
    if explanation == "call parameter":
        return Cause.CALL, telling
    if destination.startswith("{storage for ") or any(word in explanation for word in ("assign", "literal", "append")):
        return Cause.STORED, telling  # into a global, into what a pointer points to, into another heap value
    if destination == "{heap}" and explanation == "spill":  # nothing took it: a go statement's closure
        return Cause.GOROUTINE, ""
    return Cause.OTHER, f" (the compiler's last step: {explanation})" if explanation else ""


# What the compiler prints for a value that is itself an allocation; else it printed a
# value converted to an interface, unless the value is a selector (maybe a method value)
# or a sum of no number (maybe a string concatenation): those are not called conversions.
_ALLOCATING = re.compile(r"&|new\(|make\(|func literal|\.\.\. argument|append\b|\[\]|map\[|string\(|\(\[\]")
_INTERFACE_CONVERSIONS = ("any(", "(interface {})(", "interface {}(")
_BINARY = re.compile(r"\s[-+*/|&^%]\s")
_NUMBER_OPERAND = re.compile(r"(?:^|\s[-+*/|&^%]\s)\d")
_SELECTOR_END = re.compile(r"\.\w+$")


def _is_converted_value(what: str, expression: str) -> bool:
    if what.startswith("moved to heap") or _ALLOCATING.match(expression):
        return False
    if expression.startswith(_INTERFACE_CONVERSIONS):
        return True
    outer = _outside_brackets(expression)
    if _BINARY.search(outer):
        return _NUMBER_OPERAND.search(outer) is not None
    return _SELECTOR_END.search(outer) is None


def _outside_brackets(text: str) -> str:
    """`text` without what brackets hold: "f()" of "f(a + b)"."""
    kept, depth = [], 0
    for ch in text:
        if ch in ")]}":
            depth = max(depth - 1, 0)
        if depth == 0:
            kept.append(ch)
        if ch in "([{":
            depth += 1
    return "".join(kept)


def _constant_size(make: str) -> bool:
    """Whether a printed make([]T, len[, cap])'s capacity is a number (the compiler prints constants folded)."""
    arguments = _top_level_split(make[len("make("):-1])
    return len(arguments) >= 2 and arguments[-1].strip().isdigit()


def _top_level_split(text: str) -> list[str]:
    """`text` split at the commas outside brackets (a type may hold commas: func(a, b))."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts
