"""The pclntab reader against real Go binaries of each toolchain, with the ELF symbol
table and `go tool addr2line` as the oracles; mutated tables fail cleanly."""

from __future__ import annotations

import random
import re
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from gotargets import TARGETS_DIR, TOOLCHAINS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gotop.model.pclntab import Func, Pclntab, PclntabError

TOOLCHAIN_NAMES = tuple(TOOLCHAINS)  # the installed Go, Go 1.27.3, Debian's Go 1.19
SAMPLED_PCS = 400


def symbol_name(pclntab_name: str) -> re.Pattern:
    """What the ELF symbol table calls a function: it writes a "·" as "." (a type's equality
    function "eq·7"), and Go 1.18-1.20 pclntabs shorten what is in brackets (array lengths,
    type arguments) to "[...]"."""
    return re.compile(re.escape(pclntab_name.replace("·", ".")).replace(re.escape("[...]"), r"\[.+\]"))


def is_symbol(pclntab_name: str, symbol_names: set[str]) -> bool:
    return pclntab_name in symbol_names or any(symbol_name(pclntab_name).fullmatch(s) for s in symbol_names)


class Built:
    """A plain target's .gopclntab and what its symbol table says, read with pyelftools."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as file:
            elf = ELFFile(file)
            self.pclntab_bytes = elf.get_section_by_name(".gopclntab").data()
            text = elf.get_section_by_name(".text")
            self.text_range = (text["sh_addr"], text["sh_addr"] + text["sh_size"])
            self.functions: dict[int, set[str]] = {}  # address -> names of the FUNC symbols there
            self.runtime_text = 0
            for symbol in elf.get_section_by_name(".symtab").iter_symbols():
                if symbol["st_info"]["type"] == "STT_FUNC":
                    # Assembly functions are "name.abi0" in the symbol table, "name" in the pclntab.
                    self.functions.setdefault(symbol["st_value"], set()).add(symbol.name.removesuffix(".abi0"))
                if symbol.name == "runtime.text":
                    self.runtime_text = symbol["st_value"]
        self.pclntab = Pclntab.parse(self.pclntab_bytes, text_start=self.runtime_text)

    def header_words(self) -> list[int]:
        """nfunc, nfiles, textStart and the five table offsets, unpacked here independently."""
        return list(struct.unpack_from("<8Q", self.pclntab_bytes, 8))


@pytest.fixture(scope="module", params=TOOLCHAIN_NAMES)
def built(request, go_build) -> Built:
    return Built(go_build("plain", toolchain=request.param))


@pytest.fixture(scope="module")
def big_endian(tmp_path_factory) -> Built:
    """The plain target for s390x (big-endian), cross-built with the installed Go."""
    out = tmp_path_factory.mktemp("s390x") / "plain"
    subprocess.run(["go", "build", "-o", str(out), "./plain"], cwd=TARGETS_DIR, check=True, capture_output=True,
                   env=TOOLCHAINS["go"].run_env() | {"GOARCH": "s390x", "CGO_ENABLED": "0",
                                                     "GOFLAGS": "-mod=mod -buildvcs=false"})
    return Built(out)


def sample_pcs(funcs: list[Func], count: int = SAMPLED_PCS) -> list[int]:
    rng = random.Random(10)  # the same sample each run
    return [rng.randrange(func.entry, func.end) for func in rng.sample(funcs, count)]


def addr2line(toolchain: str, binary: Path, pcs: list[int]) -> list[str]:
    """`go tool addr2line`'s file:line of each pc (":-1" where it knows none).

    A function with no line table (a linker marker such as go:textfipsstart of Go 1.27)
    has table offset 0; addr2line decodes the pctab's first bytes for it anyway and prints
    a garbage negative line with no file (":-11"): that, too, is a line it knows none of."""
    tc = TOOLCHAINS[toolchain]
    out = subprocess.run([tc.go, "tool", "addr2line", str(binary)], input="".join(f"{pc:#x}\n" for pc in pcs),
                         env=tc.run_env(), cwd=TARGETS_DIR, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 2 * len(pcs), out[:500]
    return [re.sub(r"^:-\d+$", ":-1", line) for line in lines[1::2]]


# -- agreement with the symbol table and the Go tools -----------------------------


@pytest.mark.go
def test_every_function_is_the_symbol_at_its_entry(built):
    funcs = list(built.pclntab.funcs())
    assert len(funcs) == built.header_words()[0] > 1000
    assert built.pclntab.magic_version == ("1.18" if "1.19" in str(built.path) else "1.20")
    assert built.pclntab.ptr_size == 8
    for func in funcs:
        assert is_symbol(func.name, built.functions.get(func.entry, set())), func
    # Each ends where the next starts, the last inside the text: [entry, end) tile the text.
    assert all(a.end == b.entry for a, b in zip(funcs, funcs[1:]))
    assert built.text_range[0] <= funcs[0].entry and funcs[-1].end <= built.text_range[1]
    # ... and every function of the symbol table is there (the linker's markers are no functions).
    at_entry = {func.entry: func for func in funcs}
    for address, names in built.functions.items():
        if names - {"runtime.text", "runtime.etext"}:
            assert is_symbol(at_entry[address].name, names), names


@pytest.mark.go
def test_func_at_and_func_named_find_each_function(built):
    funcs = list(built.pclntab.funcs())
    first_named: dict[str, Func] = {}
    for func in funcs:
        first_named.setdefault(func.name, func)
    # An assembly function and its ABI wrapper share a name: func_named gives the first.
    assert len(first_named) < len(funcs)
    for func in random.Random(11).sample(funcs, 300):
        assert built.pclntab.func_at(func.entry) == func
        assert built.pclntab.func_at(func.end - 1) == func
        assert built.pclntab.func_named(func.name) == first_named[func.name]
    assert built.pclntab.func_at(funcs[0].entry - 1) is None
    assert built.pclntab.func_at(funcs[-1].end) is None
    assert built.pclntab.func_named("main.main") in funcs
    assert built.pclntab.func_named("main.nosuchfunction") is None
    assert built.pclntab.func_named("main") is None  # a prefix of a name is no name


@pytest.mark.go
def test_names_of_inlined_functions_alone_find_nothing(built):
    """The name table also holds functions that exist only inlined: no _func, no Func."""
    _nfunc, _nfiles, _text, names_at, cutab_at, *_ = built.header_words()
    table_names = {n.decode() for n in built.pclntab_bytes[names_at:cutab_at].split(b"\0") if n}
    inlined_only = sorted(table_names - {func.name for func in built.pclntab.funcs()})
    assert len(inlined_only) > 50
    for name in random.Random(12).sample(inlined_only, 50):
        assert built.pclntab.func_named(name) is None, name


@pytest.mark.go
def test_lines_agree_with_go_tool_addr2line(built):
    toolchain = next(name for name in TOOLCHAIN_NAMES if f"/{name}-" in str(built.path))
    pcs = sample_pcs(list(built.pclntab.funcs()))
    expected = addr2line(toolchain, built.path, pcs)
    ours = []
    for pc in pcs:
        line = built.pclntab.line_of(pc)
        ours.append(f"{line[0]}:{line[1]}" if line else ":-1")
    assert ours == expected
    # Most sampled pcs are code with a line; the rest are the padding after a function.
    assert sum(line != ":-1" for line in ours) > SAMPLED_PCS * 3 // 4


MAIN_GO = TARGETS_DIR / "plain" / "main.go"
MAIN_LINE = MAIN_GO.read_text().splitlines().index("func main() {") + 1


@pytest.mark.go
def test_the_main_function_is_where_its_source_says(built):
    main = built.pclntab.func_named("main.main")
    assert built.pclntab.line_of(main.entry) == (str(MAIN_GO), MAIN_LINE)


@pytest.mark.go
def test_a_big_endian_table_reads_the_same_way(big_endian):
    funcs = list(big_endian.pclntab.funcs())
    assert len(funcs) > 1000
    for func in funcs:
        assert is_symbol(func.name, big_endian.functions.get(func.entry, set())), func
    main = big_endian.pclntab.func_named("main.main")
    assert big_endian.pclntab.line_of(main.entry) == (str(MAIN_GO), MAIN_LINE)


# -- bad tables -------------------------------------------------------------------


def test_not_a_pclntab_is_a_one_line_error():
    for data, message in [
        (b"", "too short"),
        (b"\x7fELF" + bytes(100), "not a Go pclntab"),
        (b"\xfb\xff\xff\xff\x00\x00\x01\x08" + bytes(100), "Go 1.2-1.15 pclntab: only Go 1.18"),
        (b"\xfa\xff\xff\xff\x00\x00\x01\x08" + bytes(100), "Go 1.16-1.17 pclntab"),
        (b"\xf1\xff\xff\xff\x00\x00\x03\x08" + bytes(100), "pc quantum 3"),
        (b"\xf1\xff\xff\xff\x00\x00\x01\x08" + bytes(20), "too short"),
    ]:
        with pytest.raises(PclntabError, match=message) as error:
            Pclntab.parse(data, text_start=0x401000)
        assert "\n" not in str(error.value)


@pytest.mark.go
def test_go126_needs_the_text_start(go_build):
    """Go 1.26+ leaves the header's textStart 0: without the caller's it is an error, not entries from 0."""
    data = Built(go_build("plain")).pclntab_bytes
    assert struct.unpack_from("<Q", data, 24)[0] == 0
    with pytest.raises(PclntabError, match="text_start is needed"):
        Pclntab.parse(data)


@pytest.fixture(scope="module")
def fuzz_base(go_build) -> tuple[bytes, list[tuple[int, int]], list[int]]:
    """A real table, the byte ranges a reader depends on (header, functab, some _func
    records and their file and line tables, the starts of the other tables) and pcs of
    those functions to ask about."""
    built = Built(go_build("plain"))
    data = built.pclntab_bytes
    nfunc, _, _, names, cutab, filetab, pctab, pcln = built.header_words()
    functab = struct.unpack_from(f"<{2 * nfunc}I", data, pcln)
    chosen = random.Random(13).sample(range(nfunc), 20)
    records = [pcln + functab[2 * i + 1] for i in chosen]
    pc_tables = [pctab + struct.unpack_from("<I", data, at + offset)[0] for at in records for offset in (20, 24)]
    regions = [(0, 72), (pcln, (2 * nfunc + 1) * 4), *((at, 48) for at in records), *((at, 16) for at in pc_tables),
               *((at, 256) for at in (names, cutab, filetab, pctab))]
    funcs = list(built.pclntab.funcs())
    return data, regions, sample_pcs([funcs[i] for i in chosen], 20)


EDIT_BYTES = st.one_of(
    st.binary(min_size=1, max_size=8),
    st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\xff\xff\xff\x7f", b"\x80" * 10, b"\x01", b"\xf1\xff\xff\xff"]),
)


def read_everything(data: bytes, pcs: list[int]) -> int:
    """Parse and ask every question of the table; the number of functions read."""
    table = Pclntab.parse(data, text_start=0x401000)
    funcs = list(table.funcs())
    for pc in pcs:
        table.func_at(pc)
        table.line_of(pc)
    for func in funcs[:: max(1, len(funcs) // 20)]:
        table.func_named(func.name)
        table.line_of(func.entry)
    return len(funcs)


@pytest.mark.go
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_tables_read_or_fail_cleanly(data, fuzz_base):
    base, regions, pcs = fuzz_base
    mutated = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        start, length = data.draw(st.sampled_from(regions))
        at = start + data.draw(st.integers(0, length - 1))
        if data.draw(st.integers(0, 7)):
            edit = data.draw(EDIT_BYTES)
            mutated[at:at + len(edit)] = edit
        else:  # now and then a shift: everything after moves
            del mutated[at:at + data.draw(st.integers(1, 16))]
    try:
        read_everything(bytes(mutated), pcs)
        event("read")
    except PclntabError as error:
        assert "\n" not in str(error)
        event(f"PclntabError: {' '.join(str(error).split()[:2])}")


@pytest.mark.go
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_truncated_tables_read_or_fail_cleanly(data, fuzz_base):
    base, regions, pcs = fuzz_base
    start, length = data.draw(st.sampled_from(regions))
    cut = data.draw(st.one_of(st.integers(0, len(base)), st.integers(start, start + length)))
    try:
        read_everything(base[:cut], pcs)
        event("read")
    except PclntabError:
        event("PclntabError")
