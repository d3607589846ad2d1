"""The runtime layout tables (gotop/model/golayouts) against the DWARF of real builds.

The probe (tests/layoutprobe) is built with each toolchain the machine has, for
amd64 and arm64: the table of its release must be exactly what its DWARF says.
The wait reasons are checked against the toolchain's own runtime sources.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.elf.elffile import ELFFile
from gen_layouts import ARCHES, PROBE_DIR, binary_layout, build_probe, data_reader, differences
from gotargets import TOOLCHAINS, go_version, target_binary
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gotop.model.golayout import (
    GLOBALS,
    READER_NEEDS,
    LayoutUnavailable,
    RuntimeLayout,
    go_minor,
    layout_from_dwarf,
    layout_from_json,
    layout_table,
    layout_to_json,
    table_keys,
)
from gotop.model.machinecode import RefSignature

BUILDS = [(toolchain, arch) for toolchain in TOOLCHAINS for arch in ARCHES]
FIRST, LAST = 18, 27


def toolchain_or_skip(name: str) -> str:
    """The `go env GOVERSION` of a toolchain the machine has."""
    if not TOOLCHAINS[name].available():
        pytest.skip(f"Go toolchain {name} is not installed (tests/run installs it)")
    return go_version(name)


@cache
def probe(toolchain: str, arch: str) -> Path:
    return build_probe(TOOLCHAINS[toolchain], go_version(toolchain), arch)


@cache
def probe_layout(toolchain: str, arch: str) -> RuntimeLayout:
    return binary_layout(probe(toolchain, arch))


@pytest.mark.go
@pytest.mark.parametrize("toolchain,arch", BUILDS)
def test_table_is_what_a_builds_dwarf_says(toolchain, arch):
    """Debian's go1.19.8 against the table written from go1.19.13: a patch release apart."""
    version = toolchain_or_skip(toolchain)
    built = probe_layout(toolchain, arch)
    table = layout_table(version, arch)
    assert differences(table, built) == []
    assert built.go == table.go == f"go1.{go_minor(version)}"
    assert built.origin == "DWARF" and table.origin.startswith(f"table {table.go}.")
    assert table.origin.endswith(f"linux/{arch}") and built.missing() == []


@pytest.mark.go
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_table_fits_a_real_program_too(toolchain):
    """The runtime types do not depend on the program: a test target (gops agent,
    pprof, workloads) has the probe's layouts."""
    version = toolchain_or_skip(toolchain)
    assert differences(layout_table(version), binary_layout(target_binary("agentpprof", toolchain))) == []


def source_wait_reasons(toolchain: str) -> list[str]:
    """runtime.waitReasonStrings as the toolchain's own runtime sources spell it:
    the waitReason constants in order (iota), each with its string."""
    tc = TOOLCHAINS[toolchain]
    goroot = subprocess.run([tc.go, "env", "GOROOT"], env=tc.run_env(), capture_output=True, text=True,
                            check=True).stdout.strip()
    source = (Path(goroot) / "src" / "runtime" / "runtime2.go").read_text()
    block = source[source.index("waitReasonZero "):]
    names = re.findall(r"^\s*(waitReason\w+)", block[:block.index("\n)")], re.MULTILINE)
    literal = source[source.index("var waitReasonStrings"):]
    strings = dict(re.findall(r'^\s*(waitReason\w+):\s*"([^"]*)"', literal[:literal.index("\n}")], re.MULTILINE))
    return [strings[name] for name in names]


@pytest.mark.go
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_wait_reasons_are_the_runtimes_own(toolchain):
    version = toolchain_or_skip(toolchain)
    expected = source_wait_reasons(toolchain)
    assert list(probe_layout(toolchain, "amd64").wait_reasons) == expected
    assert list(layout_table(version).wait_reasons) == expected
    assert layout_table(version).globals["runtime.waitReasonStrings"].type_name == f"[{len(expected)}]string"


def test_every_release_has_a_table_with_what_the_reader_needs():
    assert table_keys() == {(minor, arch) for minor in range(FIRST, LAST + 1) for arch in ARCHES}
    for minor, arch in sorted(table_keys()):
        table = layout_table(f"go1.{minor}.0", arch)
        assert (table.go, table.ptr_size, table.missing()) == (f"go1.{minor}", 8, []), table.origin
        renamed = "runtime.ncpu" if minor >= 25 else "runtime.numCPUStartup"
        assert set(table.globals) == set(GLOBALS) - {renamed}, table.origin
        assert table.wait_reasons[0] == "" and len(table.wait_reasons) > 20, table.origin
        assert set(table.signatures) <= set(GLOBALS), table.origin
        for type_name, fields in table.fields.items():
            assert all(f.offset + f.size * f.count <= table.sizes[type_name] for f in fields.values())


def test_tables_say_what_changed_between_releases():
    """What the memory reader must handle, each seen in the tables (amd64)."""
    tables = {minor: layout_table(f"go1.{minor}") for minor in range(FIRST, LAST + 1)}
    for minor, table in tables.items():
        # goid became a uint64 in go1.20; parentGoid appeared in go1.21
        assert table.field("runtime.g", "goid").kind == ("int" if minor < 20 else "uint")
        assert table.has("runtime.g", "parentGoid") == (minor >= 21)
        # go1.18's controller kept heapGoal; go1.19 splits it (gcPercentHeapGoal, memoryLimit)
        assert table.has("runtime.gcControllerState", "heapGoal") == (minor == 18)
        assert table.has("runtime.gcControllerState", "memoryLimit") == (minor >= 19)
        # go1.19 moved heap_inuse and friends from mstats to the controller
        assert table.has("runtime.mstats", "heap_inuse") == (minor == 18)
        assert table.has("runtime.gcControllerState", "heapInUse") == (minor >= 19)
        # go1.25 counts free g's per list
        assert table.has("runtime.schedt", "gFree.n") == (minor < 25)
        assert table.has("runtime.p", "gFree.size") == (minor >= 25)
        # go1.26 has two more dead-like statuses
        assert ("runtime._Gdeadextra" in table.constants) == (minor >= 26)
        assert table.field("runtime.mstats", "pause_ns").count == 256
        assert table.globals["runtime.allgs"].type_name == "[]*runtime.g"
    # work was a struct literal in go1.18, runtime.workType since
    assert tables[18].globals["runtime.work"].type_name == "struct {...}"
    assert tables[19].globals["runtime.work"].type_name == "runtime.workType"
    assert all(table.has("runtime.workType", "cycles") for table in tables.values())


def test_arm64_pads_to_its_cache_line():
    """arm64's 128-byte cache lines: the same fields, elsewhere, from go1.20 on."""
    assert differences(layout_table("go1.19", "amd64"), layout_table("go1.19", "arm64")) == []
    amd64, arm64 = layout_table("go1.26", "amd64"), layout_table("go1.26", "arm64")
    assert amd64.sizes["runtime.gcControllerState"] == 392 and arm64.sizes["runtime.gcControllerState"] == 456
    assert amd64.field("runtime.workType", "cycles") != arm64.field("runtime.workType", "cycles")


@pytest.mark.parametrize("version,line", [
    ("go1.17.3", "no runtime layout table for go1.17.3 (tables cover go1.18 to go1.27)"),
    ("go1.99", "no runtime layout table for go1.99 (tables cover go1.18 to go1.27)"),
    ("", "no runtime layout table for an unknown Go version (tables cover go1.18 to go1.27)"),
    ("devel +abc", "no runtime layout table for devel +abc (tables cover go1.18 to go1.27)"),
])
def test_a_release_without_a_table_is_one_clear_line(version, line):
    with pytest.raises(LayoutUnavailable) as raised:
        layout_table(version)
    assert str(raised.value) == line


def test_table_lookup_by_release_name():
    assert layout_table("go1.19.8").origin == "table go1.19.13 linux/amd64"
    assert layout_table("go1.21rc2", "arm64").origin == "table go1.21.13 linux/arm64"
    assert layout_table("devel go1.27-4ad1e5c Tue Jul 1 2026").go == "go1.27"
    with pytest.raises(LayoutUnavailable) as raised:
        layout_table("go1.22.1", "386")
    assert str(raised.value) == "no runtime layout table for 386 (tables are for amd64 and arm64)"


def test_an_absent_field_is_one_clear_line():
    table = layout_table("go1.20.1")
    assert not table.has("runtime.g", "parentGoid")
    with pytest.raises(LayoutUnavailable) as raised:
        table.field("runtime.g", "parentGoid")
    assert str(raised.value) == "the runtime layout (table go1.20.14 linux/amd64) has no field runtime.g.parentGoid"
    assert "runtime.g.parentGoid" in dataclasses.replace(
        layout_table("go1.21"), fields={"runtime.g": {}}).missing()
    assert [need.describe() for need in READER_NEEDS if need.type_name == "runtime.p"] == [
        "runtime.p.status", "runtime.p.gFree.n|gFree.size"]


def test_table_text_round_trips_with_signatures():
    table = layout_table("go1.22")
    signed = dataclasses.replace(table, signatures={
        "runtime.allgs": (RefSignature("runtime.gcount", 0, 0), RefSignature("runtime.forEachG", 1, 8)),
        "runtime.sched": (RefSignature("runtime.gcount", 1, 184),),
    })
    text = layout_to_json(signed)
    assert '"runtime.allgs": [["runtime.gcount", 0, 0], ["runtime.forEachG", 1, 8]]' in text
    assert layout_from_json(text) == signed
    assert layout_to_json(layout_from_json(text)) == text


def test_no_go_runtime_in_the_dwarf_is_none(tmp_path):
    assert layout_from_dwarf(None) is None
    if shutil.which("gcc") is None:
        pytest.skip("gcc builds the C program with DWARF")
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-g", "-o", str(tmp_path / "c"), str(tmp_path / "main.c")], check=True)
    with (tmp_path / "c").open("rb") as file:
        assert layout_from_dwarf(ELFFile(file).get_dwarf_info()) is None


@pytest.mark.go
def test_a_build_without_dwarf_is_none(tmp_path):
    toolchain_or_skip("go")
    stripped = tmp_path / "layoutprobe"
    subprocess.run(["go", "build", "-ldflags=-w", "-o", str(stripped), "."], check=True, cwd=PROBE_DIR,
                   env=TOOLCHAINS["go"].run_env() | {"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"})
    with stripped.open("rb") as file:
        assert layout_from_dwarf(ELFFile(file).get_dwarf_info()) is None


# -- damaged DWARF ---------------------------------------------------------------------

DWARF_SECTIONS = [name for name in inspect.signature(DWARFInfo.__init__).parameters if name.endswith("_sec")]


@dataclasses.dataclass
class DamageBase:
    """The probe's DWARF, decompressed, and where its two big runtime units (code,
    types) lie in .debug_info."""

    dwarf: DWARFInfo
    debug_info: bytes
    runtime_units: list[tuple[int, int]]  # (offset, length)
    read: Callable[[int, int], bytes | None]

    def with_debug_info(self, data: bytes) -> DWARFInfo:
        sections = {name: getattr(self.dwarf, name) for name in DWARF_SECTIONS}
        sections["debug_info_sec"] = self.dwarf.debug_info_sec._replace(stream=io.BytesIO(data), size=len(data))
        return DWARFInfo(config=self.dwarf.config, **sections)

    def layout(self, data: bytes) -> str:
        """What layout_from_dwarf makes of a damaged .debug_info: None, a layout or
        a one-line LayoutUnavailable; anything else fails the test."""
        try:
            layout = layout_from_dwarf(self.with_debug_info(data), self.read)
        except LayoutUnavailable as error:
            assert "\n" not in str(error)
            return "LayoutUnavailable"
        if layout is None:
            return "None"
        layout.missing()
        return "layout"


@pytest.fixture(scope="module")
def damage_base():
    toolchain_or_skip("go")
    with probe("go", "amd64").open("rb") as file:
        elf = ELFFile(file)
        dwarf = elf.get_dwarf_info()
        section = dwarf.debug_info_sec
        section.stream.seek(0)
        debug_info = section.stream.read(section.size)
        units = sorted(((unit.cu_offset, unit["unit_length"] + unit.structs.initial_length_field_size())
                        for unit in dwarf.iter_CUs()
                        if unit.get_top_DIE().attributes["DW_AT_name"].value == b"runtime"),
                       key=lambda unit: unit[1])[-2:]
        yield DamageBase(dwarf, debug_info, sorted(units), data_reader(elf))


FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EDIT_BYTES = st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\x80" * 5]))


@pytest.mark.go
@FUZZ
@given(data=st.data())
def test_damaged_debug_info_is_a_clean_error(data, damage_base):
    """Bytes of the runtime's units overwritten (each try parses them whole: ~1.5 s)."""
    mutated = bytearray(damage_base.debug_info)
    for _ in range(data.draw(st.integers(1, 6))):
        start, length = data.draw(st.sampled_from(damage_base.runtime_units))
        at = start + data.draw(st.integers(0, length - 1))
        edit = data.draw(EDIT_BYTES)
        mutated[at:at + len(edit)] = edit
    event(damage_base.layout(bytes(mutated)))


@pytest.mark.go
def test_truncated_debug_info_is_a_clean_error(damage_base):
    """Cut in each runtime unit: at its header, in its first entries, half-way, near its end."""
    for start, length in damage_base.runtime_units:
        for cut in (start + 3, start + 40, start + length // 2, start + length - 2):
            assert damage_base.layout(damage_base.debug_info[:cut]) in ("LayoutUnavailable", "None"), cut
