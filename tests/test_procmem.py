"""Reading a real Go process's memory from outside: what is read is what is there,
a region that is not mapped is an error, and a refusal says why in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

from gotop.sources.procmem import MemoryUnreadable, ProcessMemory, executable_mappings, load_bias


def _elf_segments(binary: Path) -> tuple[int, int]:
    """The first PT_LOAD's (p_vaddr, p_offset), read with pyelftools."""
    from elftools.elf.elffile import ELFFile

    with open(binary, "rb") as f:
        load = next(s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD")
        return load["p_vaddr"], load["p_offset"]


def test_reads_the_executable_as_mapped_in_a_running_go_process(go_target):
    target = go_target("plain")
    binary = Path(os.readlink(f"/proc/{target.pid}/exe"))
    mapping = executable_mappings(target.pid)[0]
    memory = ProcessMemory(target.pid)
    assert memory.read(mapping.start, 4) == b"\x7fELF"
    head = binary.read_bytes()[:4096]
    assert memory.read(mapping.start, 4096) == head
    # Many regions in one call come back in the order asked, each its own bytes.
    both = memory.read_spans(array("Q", [mapping.start + 64, mapping.start]), array("Q", [16, 16]))
    assert both == head[64:80] + head[:16]
    vaddr, offset = _elf_segments(binary)
    assert load_bias(target.pid, vaddr, offset) == mapping.start - (vaddr & ~0xFFF)


def test_gathered_reads_give_each_object_its_own_bytes(go_target):
    target = go_target("plain")
    start = executable_mappings(target.pid)[0].start
    head = Path(f"/proc/{target.pid}/exe").read_bytes()[:3 * 4096]
    addresses = [start + 8000, start + 16, start + 16, start + 300, start + 20]  # unsorted, a repeat, a far one
    memory = ProcessMemory(target.pid)
    order, data, offsets = memory.read_gathered(addresses, 24, max_gap=100)
    assert order == sorted(set(addresses))
    for address, offset in zip(order, offsets):
        assert data[offset:offset + 24] == head[address - start:address - start + 24]
    # The buffer is kept for the next read, which gives its own bytes and no more.
    order, data, offsets = memory.read_gathered([start + 4000], 8)
    assert (order, bytes(data), offsets) == ([start + 4000], head[4000:4008], [0])


def test_an_unmapped_region_is_an_error_not_zeros(go_target):
    target = go_target("plain")
    start = executable_mappings(target.pid)[0].start
    memory = ProcessMemory(target.pid)
    with pytest.raises(MemoryUnreadable, match="not mapped"):
        memory.read_spans(array("Q", [start, 0x10]), array("Q", [8, 8]))
    memory._use_vm_readv = False  # the /proc/PID/mem path says the same
    with pytest.raises(MemoryUnreadable, match="not mapped"):
        memory.read(0x10, 8)
    assert memory.read(start, 4) == b"\x7fELF"


def test_a_gone_process_says_so(go_target):
    target = go_target("plain")
    memory = ProcessMemory(target.pid)
    target.kill()
    with pytest.raises(MemoryUnreadable, match="has exited"):
        memory.read(0x400000, 8)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to read as another user")
def test_another_users_process_is_refused_in_one_line_that_says_what_allows_it(go_target):
    target = go_target("plain")
    start = executable_mappings(target.pid)[0].start
    script = (
        "from gotop.sources.procmem import ProcessMemory, MemoryUnreadable\n"
        f"try:\n    ProcessMemory({target.pid}).read({start}, 4)\n"
        "except MemoryUnreadable as e:\n    print(e)\n"
    )
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent).stdout
    assert out.count("\n") == 1, out
    assert f"pid {target.pid}: it belongs to another user (uid 0): run gotop as root (or with CAP_SYS_PTRACE)" in out
