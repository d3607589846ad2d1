"""GoBinary.open on real Go binaries of each toolchain, built plain, with -w, with -s -w,
as a PIE and linked by the C linker; pyelftools and the symbol table as the oracles. Files
that are not Go binaries, or no longer whole, are one clear line."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from elfbytes import Elf, overwrite, without_section_headers
from elftools.elf.elffile import ELFFile
from gotargets import TARGETS_DIR, TOOLCHAINS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mutations import damaged_in

from gotop.model.elf import PT_LOAD, Segment
from gotop.model.pclntab import PclntabError
from gotop.sources.gobinary import BinaryError, GoBinary

TOOLCHAIN_NAMES = tuple(TOOLCHAINS)
STRIPPED = ("-ldflags=-s -w",)
FZF = Path(__file__).resolve().parent / "samples" / "binaries" / "fzf-go1.15"


def elf_facts(path: Path) -> tuple[dict[str, tuple[int, int]], dict[str, int], list[Segment]]:
    """pyelftools' view: data symbols (name -> (address, size)), function addresses, PT_LOAD segments."""
    with path.open("rb") as file:
        elf = ELFFile(file)
        objects: dict[str, tuple[int, int]] = {}
        functions: dict[str, int] = {}
        symtab = elf.get_section_by_name(".symtab")
        for symbol in symtab.iter_symbols() if symtab else ():
            if symbol["st_info"]["type"] == "STT_OBJECT":
                objects.setdefault(symbol.name, (symbol["st_value"], symbol["st_size"]))
            elif symbol["st_info"]["type"] == "STT_FUNC":
                functions.setdefault(symbol.name, symbol["st_value"])
        segments = [Segment(PT_LOAD, s["p_flags"], s["p_offset"], s["p_vaddr"], s["p_filesz"], s["p_memsz"],
                            s["p_align"]) for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    return objects, functions, segments


def section_header(elf: Elf, index: int) -> int:
    return elf.get("shoff") + index * elf.get("shentsize")


def without_symtab(path: Path, out: Path) -> Path:
    """A copy of the binary whose .symtab section is renamed: no symbol table, nothing moved."""
    data = path.read_bytes()
    elf = Elf.of(data)
    names = struct.unpack_from("<Q", data, section_header(elf, elf.get("shstrndx")) + 24)[0]  # its sh_offset
    header_at, _, _ = elf.section(".symtab")
    name_at = names + struct.unpack_from("<I", data, header_at)[0]
    out.write_bytes(overwrite(data, name_at, b".nosymt"))
    out.chmod(0o755)
    return out


@pytest.fixture(scope="module", params=TOOLCHAIN_NAMES)
def toolchain(request) -> str:
    return request.param


# -- what is read ---------------------------------------------------------------------


@pytest.mark.go
def test_a_plain_build(go_build, toolchain):
    path = go_build("plain", toolchain=toolchain)
    objects, functions, segments = elf_facts(path)
    binary = GoBinary.open(str(path))
    assert (binary.arch, binary.ptr_size, binary.pie, binary.has_dwarf) == ("amd64", 8, False, True)
    assert binary.symbols == objects and "runtime.allgs" in binary.symbols
    assert list(binary.segments) == segments
    assert binary.pclntab.text_start == functions["runtime.text"]
    assert binary.pclntab.func_named("main.main").entry == functions["main.main"]
    units = {cu.get_top_DIE().attributes["DW_AT_name"].value for cu in binary.dwarf.iter_CUs()}
    assert {b"main", b"runtime"} <= units


@pytest.mark.go
def test_a_stripped_build_has_the_same_functions_and_no_symbols(go_build, toolchain):
    plain = GoBinary.open(str(go_build("plain", toolchain=toolchain)))
    stripped = GoBinary.open(str(go_build("plain", toolchain=toolchain, flags=STRIPPED)))
    assert stripped.symbols == {} and not stripped.has_dwarf and stripped.dwarf is None
    # The text start comes from the moduledata there (no runtime.text symbol, and 0 in the
    # header since Go 1.26): the functions are where they are in the plain build.
    assert stripped.pclntab.text_start == plain.pclntab.text_start
    assert list(stripped.pclntab.funcs()) == list(plain.pclntab.funcs())


@pytest.mark.go
def test_a_build_without_dwarf_keeps_its_symbols(go_build):
    binary = GoBinary.open(str(go_build("plain", flags=("-ldflags=-w",))))
    assert binary.symbols and not binary.has_dwarf and binary.dwarf is None


@pytest.mark.go
def test_a_pie(go_build):
    path = go_build("plain", flags=("-buildmode=pie",))
    _, functions, _ = elf_facts(path)
    binary = GoBinary.open(str(path))
    assert binary.pie
    assert binary.pclntab.text_start == functions["runtime.text"]
    assert binary.pclntab.func_named("main.main").entry == functions["main.main"]


def build_external(out: Path, toolchain: str, *flags: str, ldflags: str = "") -> Path:
    """The plain target linked by the C linker, as cgo builds are."""
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler for an externally linked build")
    if not TOOLCHAINS[toolchain].available():
        pytest.skip(f"Go toolchain {toolchain} is not installed")
    tc = TOOLCHAINS[toolchain]
    env = tc.run_env() | {"CGO_ENABLED": "1", "GOFLAGS": "-mod=mod -buildvcs=false"}
    subprocess.run([tc.go, "build", *flags, f"-ldflags=-linkmode=external {ldflags}", "-o", str(out), "./plain"],
                   cwd=TARGETS_DIR, env=env, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def external_link(tmp_path_factory) -> Path:
    """C start-up code comes first in its .text: runtime.text is not where .text starts."""
    return build_external(tmp_path_factory.mktemp("external") / "plain", "go")


@pytest.mark.go
def test_an_externally_linked_binary_without_symbols_finds_its_text_start(external_link, tmp_path):
    _, functions, _ = elf_facts(external_link)
    with external_link.open("rb") as file:
        text = ELFFile(file).get_section_by_name(".text")["sh_addr"]
    assert functions["runtime.text"] != text
    plain = GoBinary.open(str(external_link))
    stripped = GoBinary.open(str(without_symtab(external_link, tmp_path / "plain")))
    assert stripped.symbols == {}
    assert plain.pclntab.text_start == stripped.pclntab.text_start == functions["runtime.text"]
    assert stripped.pclntab.func_named("main.main").entry == functions["main.main"]


@pytest.mark.go
def test_a_stripped_pie_whose_c_linker_merged_the_pclntab_section(tmp_path):
    """Go 1.19 names a PIE's pclntab .data.rel.ro.gopclntab, and GNU ld merges that into
    .data.rel.ro: without symbols, the pclntab is found by its header and the moduledata."""
    plain = build_external(tmp_path / "plain", "go1.19", "-buildmode=pie")
    stripped = build_external(tmp_path / "stripped", "go1.19", "-buildmode=pie", ldflags="-s -w")
    with stripped.open("rb") as file:
        names = {section.name for section in ELFFile(file).iter_sections()}
    assert not names & {".gopclntab", ".data.rel.ro.gopclntab"}, names
    binary = GoBinary.open(str(stripped))
    assert binary.pie and not binary.symbols
    assert list(binary.pclntab.funcs()) == list(GoBinary.open(str(plain)).pclntab.funcs())


@pytest.mark.go
def test_read_gives_the_bytes_mapped_at_an_address(go_build):
    path = go_build("plain")
    binary = GoBinary.open(str(path))
    main = binary.pclntab.func_named("main.main")
    with path.open("rb") as file:
        text = ELFFile(file).get_section_by_name(".text")
        expected = text.data()[main.entry - text["sh_addr"]:main.end - text["sh_addr"]]
    assert binary.read(main.entry, main.end - main.entry) == expected
    bss = binary.symbols["runtime.allgs"][0]  # in .bss: mapped, but not in the file
    with pytest.raises(BinaryError, match="not in the file"):
        binary.read(bss, 8)


@pytest.mark.go
def test_a_file_replaced_after_opening_is_an_error_not_other_bytes(go_build, tmp_path):
    copy = tmp_path / "plain"
    shutil.copy(go_build("plain"), copy)
    binary = GoBinary.open(str(copy))
    main = binary.pclntab.func_named("main.main")
    with copy.open("ab") as file:
        file.write(b"\0")
    with pytest.raises(BinaryError, match="changed since it was opened"):
        binary.read(main.entry, 16)


@pytest.mark.go
def test_the_pclntab_is_mapped_not_kept_in_memory(go_build):
    """Opening a binary allocates a fraction of its pclntab (its function table, its data
    symbols): the pclntab itself is mapped from the file (it was 6-14 MB of gotop's heap
    for each of Debian's etcd, containerd, prometheus and caddy)."""
    path = go_build("plain")
    with path.open("rb") as file:
        pclntab_size = ELFFile(file).get_section_by_name(".gopclntab")["sh_size"]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        binary = GoBinary.open(str(path))
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert binary.symbols
    assert kept < pclntab_size // 2
    assert binary.pclntab.func_named("main.main") is not None  # read through the mapping


# -- what is not a Go binary ------------------------------------------------------------


def test_files_that_are_not_go_binaries_are_one_line(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [
        (text, "not an ELF file"),
        (tmp_path / "missing", "cannot open (No such file or directory)"),
        (tmp_path, "not a regular file"),
        (fifo, "not a regular file"),  # and no hang: opened without blocking
        (Path(sys.executable).resolve(), "not a Go binary (no .gopclntab section)"),
        (FZF, "a Go 1.2-1.15 pclntab: only Go 1.18 and later are read"),
    ]
    for path, message in cases:
        with pytest.raises(BinaryError) as error:
            GoBinary.open(str(path))
        assert str(error.value) == f"{path}: {message}" or message in str(error.value), error.value
        assert "\n" not in str(error.value)


@pytest.mark.go
def test_a_binary_without_section_headers_is_one_line(go_build, tmp_path):
    path = tmp_path / "sstripped"
    path.write_bytes(without_section_headers(go_build("plain", flags=STRIPPED).read_bytes()))
    with pytest.raises(BinaryError, match="no section headers"):
        GoBinary.open(str(path))


@pytest.mark.go
def test_truncated_binaries_are_one_line(go_build, tmp_path):
    data = go_build("plain", flags=STRIPPED).read_bytes()
    elf = Elf.of(data)
    _, pclntab_at, pclntab_size = elf.section(".gopclntab")
    path = tmp_path / "cut"
    for cut in (0, 10, 63, 64, 4096, pclntab_at + 100, pclntab_at + pclntab_size - 1, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(BinaryError) as error:
            GoBinary.open(str(path))
        assert "\n" not in str(error.value) and str(error.value).startswith(f"{path}: ")


@pytest.fixture(scope="module")
def fuzz_base(go_build) -> tuple[bytes, list[tuple[int, int]]]:
    """A stripped binary and the byte ranges its opening depends on: ELF, program and
    section headers, section names, the start of the pclntab and the moduledata."""
    data = go_build("plain", flags=STRIPPED).read_bytes()
    elf = Elf.of(data)
    names_at, names_size = struct.unpack_from("<QQ", data, section_header(elf, elf.get("shstrndx")) + 24)
    _, pclntab_at, _ = elf.section(".gopclntab")
    _, module_at, module_size = elf.section(".go.module")
    regions = [(0, elf.header_size), (elf.get("phoff"), elf.get("phnum") * elf.get("phentsize")),
               (elf.get("shoff"), elf.get("shnum") * elf.get("shentsize")), (names_at, names_size),
               (pclntab_at, 256), (module_at, module_size)]
    return data, regions


EDIT_BYTES = st.one_of(st.binary(min_size=1, max_size=8),
                       st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\xff\xff\xff\x7f", b"\x01"]))


@pytest.mark.go
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_binaries_open_or_fail_in_one_line(data, fuzz_base, tmp_path_factory):
    base, regions = fuzz_base
    mutated = data.draw(damaged_in(base, regions, EDIT_BYTES))
    path = tmp_path_factory.mktemp("mutated") / "plain"
    path.write_bytes(mutated)
    try:
        binary = GoBinary.open(str(path))
        list(binary.pclntab.funcs())  # read lazily: a corrupt record is a PclntabError then
        event("opened")
    except (BinaryError, PclntabError) as error:
        assert "\n" not in str(error)
        event(f"{type(error).__name__}: {str(error).removeprefix(f'{path}: ').split(' (')[0][:40]}")
