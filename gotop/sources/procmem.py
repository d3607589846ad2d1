"""Reading another process's memory, read-only, without attaching to it or stopping it.

`process_vm_readv(2)` copies from the target's address space into ours in one
system call, for many regions at once (a goroutine walk reads every `g` in
one call): nothing is written, the target is not stopped, and no ptrace
attach happens. Where the kernel lacks it (ENOSYS), `pread` on /proc/PID/mem
does the same one region at a time.

Either needs the right to "ptrace-read" the target: the same user and a
`kernel.yama.ptrace_scope` of 0 (1 allows descendants only, 2 root only, 3
nobody), or root / CAP_SYS_PTRACE. `permission_hint` says which in one line.

The target runs on while we read: a region can be unmapped between two reads
(`MemoryUnreadable`), and what it holds can change. Callers check what they
read; this module only promises never to return bytes it did not read.
"""

from __future__ import annotations

import ctypes
import errno
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from gotop.errors import GotopError

IOV_MAX = 1024  # remote regions per process_vm_readv call (Linux's UIO_MAXIOV)
YAMA_SCOPE = "/proc/sys/kernel/yama/ptrace_scope"


class MemoryUnreadable(GotopError):
    """The target's memory could not be read (permission, a region gone, the process gone)."""


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_vm_readv = getattr(_libc, "process_vm_readv", None)
if _vm_readv is not None:
    _vm_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                          ctypes.c_ulong]
    _vm_readv.restype = ctypes.c_ssize_t


class ProcessMemory:
    """The address space of one process, read-only."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._use_vm_readv = _vm_readv is not None
        self._gathered = bytearray()  # read_gathered's buffer, kept between calls

    def read(self, address: int, size: int) -> bytes:
        """`size` bytes at `address`, all of them or MemoryUnreadable."""
        return self.read_spans(array("Q", (address,)), array("Q", (size,)))

    def read_gathered(self, addresses: Sequence[int], size: int,
                      max_gap: int = 4096) -> tuple[list[int], memoryview, list[int]]:
        """`size` bytes at each address, for many small objects packed in few pages
        (the `g` structs of 1000 goroutines sit in some 60 heap spans): objects
        less than `max_gap` bytes apart are read as one region. On this machine
        (a Firecracker VM), the system calls for 1000 `g` structs read one region
        each take 0.47 ms; gathered in 61 regions, 0.2 ms with the bookkeeping below.

        Returns the distinct addresses in ascending order, the bytes read, and
        the offset of each address's object in them. The bytes are a view of a
        buffer kept for the next call, which overwrites it: a new buffer costs
        its page faults at every call (10,000 `g` structs, 4.7 MB: read into a
        new buffer and copied out, 5 ms, most of it page faults; into the kept
        one, 0.8 ms).
        """
        # Sorted, then made distinct: allgs is nearly in address order, which sorts in
        # about O(n) (10,000 addresses: 0.5 ms; through a set first, 1.9 ms).
        order = list(dict.fromkeys(sorted(addresses)))
        if not order:
            return [], memoryview(b""), []
        starts, sizes, offsets = array("Q"), array("Q"), []
        reach = max_gap + size  # an object farther than this from the previous one starts a new region
        run_start = previous = shift = order[0]  # shift: an address less it is where its bytes are
        for address in order:
            if address - previous > reach:
                starts.append(run_start)
                sizes.append(previous + size - run_start)
                shift += address - previous - size  # the bytes between the two regions are not read
                run_start = address
            offsets.append(address - shift)
            previous = address
        starts.append(run_start)
        sizes.append(previous + size - run_start)
        total = sum(sizes)
        if not total <= len(self._gathered) <= 4 * total:  # grown, or shrunk by much: fits again
            self._gathered = bytearray(total + total // 4)
        data = memoryview(self._gathered)[:total]
        self._read_into(data, starts, sizes)
        return order, data, offsets

    def read_spans(self, addresses: array, sizes: array) -> bytes:
        """The bytes at each (address, size), concatenated in order: all of them or MemoryUnreadable."""
        out = bytearray(sum(sizes))
        self._read_into(memoryview(out), addresses, sizes)
        return bytes(out)

    def _read_into(self, buffer: memoryview, addresses: array, sizes: array) -> None:
        """Fills `buffer` with the bytes at each (address, size), in order.

        One system call per IOV_MAX regions: 1000 goroutines' `g` structs cost
        one call, not 1000. The iovecs are built as an array of integers
        (a ctypes array of 1000 structures costs 1 ms to fill; this, 20 us).
        """
        done = 0
        for start in range(0, len(addresses), IOV_MAX):
            chunk_addresses, chunk_sizes = addresses[start:start + IOV_MAX], sizes[start:start + IOV_MAX]
            length = sum(chunk_sizes)
            self._read_chunk(buffer[done:done + length], chunk_addresses, chunk_sizes)
            done += length

    def _read_chunk(self, buffer: memoryview, addresses: array, sizes: array) -> None:
        if not buffer:
            return
        if self._use_vm_readv:
            try:
                self._vm_readv(buffer, addresses, sizes)
                return
            except _NoSyscall:
                self._use_vm_readv = False
        self._pread(buffer, addresses, sizes)

    def _vm_readv(self, buffer: memoryview, addresses: array, sizes: array) -> None:
        assert _vm_readv is not None
        local = _Iovec(ctypes.addressof(ctypes.c_char.from_buffer(buffer)), len(buffer))
        remote = array("Q", bytes(16 * len(addresses)))
        remote[0::2], remote[1::2] = addresses, sizes
        done = _vm_readv(self.pid, ctypes.byref(local), 1, remote.buffer_info()[0], len(addresses), 0)
        if done == len(buffer):
            return
        if done < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSYS:
                raise _NoSyscall
            raise self._error(err)
        # A partial read: the region holding byte `done` is gone (unmapped, or never was).
        at = next(i for i, end in enumerate(accumulate(sizes)) if end > done)
        raise MemoryUnreadable(f"pid {self.pid}: {addresses[at]:#x} is not mapped")

    def _pread(self, buffer: memoryview, addresses: array, sizes: array) -> None:
        try:
            fd = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise self._error(e.errno or 0) from None
        try:
            at = 0
            for address, size in zip(addresses, sizes):
                try:
                    data = os.pread(fd, size, address)
                except OSError as e:
                    raise self._error(e.errno or 0) from None
                if len(data) != size:
                    raise MemoryUnreadable(f"pid {self.pid}: {address:#x} is not mapped")
                buffer[at:at + size] = data
                at += size
        finally:
            os.close(fd)

    def _error(self, err: int) -> MemoryUnreadable:
        if err == errno.ESRCH:
            return MemoryUnreadable(f"pid {self.pid} has exited")
        if err in (errno.EPERM, errno.EACCES):
            return MemoryUnreadable(f"pid {self.pid}: {permission_hint(self.pid)}")
        if err in (errno.EFAULT, errno.EIO):
            return MemoryUnreadable(f"pid {self.pid}: an address is not mapped")
        return MemoryUnreadable(f"pid {self.pid}: reading its memory failed: {os.strerror(err)}")


class _NoSyscall(Exception):
    """process_vm_readv is not in this kernel (or a seccomp filter says ENOSYS)."""


def permission_hint(pid: int) -> str:
    """One line: why reading `pid`'s memory is refused, and what would allow it."""
    scope = _yama_scope()
    need = "run gotop as root (or with CAP_SYS_PTRACE)"
    if os.geteuid() == 0:
        if scope == 3:
            return "reading another process's memory is off for everyone (kernel.yama.ptrace_scope = 3)"
        return "reading its memory is refused even to root (a security module or a container's seccomp profile)"
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        owner = None
    if owner is not None and owner != os.geteuid():
        return f"it belongs to another user (uid {owner}): {need}"
    if scope == 1:
        return f"kernel.yama.ptrace_scope = 1 lets a process read only its descendants: {need}, or set it to 0"
    if scope == 2:
        return f"kernel.yama.ptrace_scope = 2 lets only root read another process: {need}"
    if scope == 3:
        return "reading another process's memory is off for everyone (kernel.yama.ptrace_scope = 3)"
    return f"reading its memory is refused (not dumpable, or a security module): {need}"


def _yama_scope() -> int | None:
    try:
        with open(YAMA_SCOPE, "rb") as f:
            return int(f.read(16).strip() or b"-1")
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class ExeMapping:
    start: int
    end: int
    offset: int  # in the mapped file
    inode: int
    path: str


def executable_mappings(pid: int) -> list[ExeMapping]:
    """The mappings of the process's own executable (/proc/PID/exe), lowest first."""
    try:
        st = os.stat(f"/proc/{pid}/exe")
        with open(f"/proc/{pid}/maps", "rb") as f:
            text = f.read(16 << 20)
    except OSError as e:
        raise MemoryUnreadable(f"pid {pid}: cannot read its mappings: {e.strerror}") from None
    found = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 5 or not parts[4].isdigit() or int(parts[4]) != st.st_ino:
            continue
        start, _, end = parts[0].partition(b"-")
        try:
            found.append(ExeMapping(int(start, 16), int(end, 16), int(parts[2], 16), int(parts[4]),
                                 parts[5].decode(errors="replace") if len(parts) > 5 else ""))
        except ValueError:
            continue
    return sorted(found, key=lambda m: m.start)


def load_bias(pid: int, first_load_vaddr: int, first_load_offset: int) -> int:
    """What to add to the executable's link-time addresses to get the process's:
    0 for a fixed-address binary; for a PIE, where its first PT_LOAD segment landed.

    `first_load_vaddr`/`first_load_offset`: the lowest PT_LOAD segment's p_vaddr and p_offset.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    for mapping in executable_mappings(pid):
        if mapping.offset == first_load_offset & ~(page - 1):
            return mapping.start - (first_load_vaddr & ~(page - 1))
    raise MemoryUnreadable(f"pid {pid}: its executable is not mapped where /proc/{pid}/maps says")
