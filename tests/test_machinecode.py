"""Runtime variables found through machine code: the references decoded agree with
`go tool objdump`, signatures derived from a plain build find the variables in the
stripped build of each toolchain, and signatures of another release, or code that
changed, give the right address or none."""

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
from mutations import mutated

from gotop.model.machinecode import RefSignature, data_references, resolve_globals
from gotop.sources.gobinary import GoBinary

TOOLCHAIN_NAMES = tuple(TOOLCHAINS)  # the installed Go, Go 1.27.3, Debian's Go 1.19
STRIPPED = ("-ldflags=-s -w",)
# What the memory reader needs (runtime.ncpu went in Go 1.26, runtime.waitReasonStrings came in 1.19).
WANTED = ("runtime.allgs", "runtime.allglen", "runtime.memstats", "runtime.gcController", "runtime.mheap_",
          "runtime.gomaxprocs", "runtime.ncpu", "runtime.sched", "runtime.allp", "runtime.work",
          "runtime.buildVersion", "runtime.waitReasonStrings")


def sections(path: Path) -> dict[str, tuple[int, int]]:
    with path.open("rb") as file:
        return {s.name: (s["sh_addr"], s["sh_size"]) for s in ELFFile(file).iter_sections() if s["sh_addr"]}


def moved(address: int, plain: Path, stripped: Path) -> int:
    """Where an address of the plain build is in the stripped one: -s -w can move a section
    (Go 1.26 starts .gopclntab and what follows 0x20 later), never what is inside one."""
    before, after = sections(plain), sections(stripped)
    for name, (start, size) in before.items():
        if start <= address < start + size:
            return address - start + after[name][0]
    raise AssertionError(f"{address:#x} is in no section of {plain}")


class Builds:
    """A toolchain's plain target built plain and with -s -w, opened."""

    def __init__(self, toolchain: str, plain: Path, stripped: Path) -> None:
        self.toolchain = toolchain
        self.plain_path, self.stripped_path = plain, stripped
        self.plain, self.stripped = GoBinary.open(str(plain)), GoBinary.open(str(stripped))
        self.signatures = self.plain.derive_signatures(WANTED)

    def truth(self, name: str) -> int:
        """The variable's address in the stripped build, from the plain build's symbol table."""
        return moved(self.plain.symbols[name][0], self.plain_path, self.stripped_path)


@pytest.fixture(scope="module")
def all_builds(go_build) -> dict[str, Builds]:
    return {tc: Builds(tc, go_build("plain", toolchain=tc), go_build("plain", toolchain=tc, flags=STRIPPED))
            for tc in TOOLCHAIN_NAMES if TOOLCHAINS[tc].available()}


@pytest.fixture(scope="module", params=TOOLCHAIN_NAMES)
def builds(request, all_builds) -> Builds:
    if request.param not in all_builds:
        pytest.skip(f"Go toolchain {request.param} is not installed")
    return all_builds[request.param]


# -- the references decoded ---------------------------------------------------------

_SB_OPERAND = re.compile(r"(?:^|[\s,])(\$?[^\s,]+?)(?:\+(0x[0-9a-f]+|\d+))?\(SB\)")
_IP_OPERAND = re.compile(r"(-?0x[0-9a-f]+|-?\d+)\(IP\)")


def objdump_references(toolchain: str, path: Path, functions: list[str]) -> dict[int, list[int]]:
    """What `go tool objdump` says each function refers to, by entry: its symbolized
    sym+off(SB) operands and its unsymbolized disp(IP) ones, calls and jumps aside.
    A "$sym(SB)" is a memory operand too (MOVSD_XMM $f64.3ff0000000000000(SB), X0) unless
    the instruction ends with the address itself: then it is an immediate constant that
    objdump symbolized (MOVL $runtime.cpuprof+2752(SB), AX for MOVL $0x800000, AX)."""
    with path.open("rb") as file:
        addresses = {s.name: s["st_value"] for s in ELFFile(file).get_section_by_name(".symtab").iter_symbols()}
    tc = TOOLCHAINS[toolchain]
    pattern = "|".join(f"^{re.escape(name)}(.abi0)?$" for name in functions)
    out = subprocess.run([tc.go, "tool", "objdump", "-s", pattern, str(path)], env=tc.run_env(), cwd=TARGETS_DIR,
                         capture_output=True, text=True, check=True).stdout
    found: dict[int, list[int]] = {}
    current: list[int] | None = None
    for line in out.splitlines():
        if line.startswith("TEXT "):
            current = None
            continue
        fields = [field.strip() for field in line.split("\t") if field.strip()]
        if len(fields) < 4:
            continue
        address, encoding, instruction = int(fields[1], 16), fields[2], fields[3]
        if current is None:
            current = found.setdefault(address, [])
        if instruction.startswith(("J", "CALL")):
            continue
        # "$f64.3ff0000000000000" is a symbol's name; "$" before another name marks a constant.
        refs = [addresses.get(m[1], addresses.get(m[1][1:])) + int(m[2] or "0", 0)
                for m in _SB_OPERAND.finditer(instruction)]
        refs = [ref for ref in refs if not encoding.endswith(struct.pack("<I", ref & 0xFFFFFFFF).hex())]
        for m in _IP_OPERAND.finditer(instruction):
            displacement = struct.unpack("<i", struct.pack("<I", int(m[1], 0) & 0xFFFFFFFF))[0]
            refs.append(address + len(encoding) // 2 + displacement)
        current += [ref for ref in refs if ref not in current]
    return found


@pytest.mark.go
def test_data_references_agree_with_go_tool_objdump(builds):
    funcs = [func for func in builds.plain.pclntab.funcs() if func.name.startswith("runtime.")]
    sample = random.Random(20).sample(funcs, 80)
    expected = objdump_references(builds.toolchain, builds.plain_path, [func.name for func in sample])
    total = 0
    for func in sample:
        ours = data_references(builds.plain.read(func.entry, func.end - func.entry), func.entry, "amd64")
        assert ours == expected[func.entry], func
        total += len(ours)
    assert total > 100


def test_data_references_of_any_bytes_are_a_list():
    rng = random.Random(21)
    for arch in ("amd64", "arm64"):
        for _ in range(200):
            assert isinstance(data_references(rng.randbytes(rng.randrange(0, 200)), 0x401000, arch), list)
    with pytest.raises(ValueError, match="riscv64"):
        data_references(b"\x90", 0, "riscv64")


# -- the variables found --------------------------------------------------------------


@pytest.mark.go
def test_signatures_of_the_plain_build_find_the_variables_in_the_stripped_one(builds):
    # runtime.buildVersion has none: runtime.schedinit alone refers to it, and one function is one vote.
    expected = {name for name in WANTED if name in builds.plain.symbols} - {"runtime.buildVersion"}
    assert set(builds.signatures) == expected
    assert {"runtime.allgs", "runtime.memstats", "runtime.sched", "runtime.waitReasonStrings"} <= expected
    assert all(len({s.function for s in signatures}) >= 2 for signatures in builds.signatures.values())
    assert not builds.stripped.symbols
    for name, signatures in builds.signatures.items():
        assert builds.stripped.global_address(name, signatures) == (builds.truth(name), "machine code"), name
        assert builds.plain.global_address(name, signatures) == (builds.plain.symbols[name][0], "symbol table")


def wait_reason(binary: GoBinary, strings_at: int, index: int) -> str:
    """runtime.waitReasonStrings[index], read from the file: the array of string headers is
    initialized data, the strings are in .rodata."""
    pointer, length = struct.unpack("<QQ", binary.read(strings_at + 16 * index, 16))
    return binary.read(pointer, length).decode() if length else ""


@pytest.mark.go
def test_the_wait_reasons_found_read_as_the_runtime_names_them(builds):
    address, _ = builds.stripped.global_address("runtime.waitReasonStrings",
                                                builds.signatures["runtime.waitReasonStrings"])
    assert [wait_reason(builds.stripped, address, i) for i in range(3)] == ["", "GC assist marking", "IO wait"]


@pytest.mark.go
def test_signatures_of_another_release_give_the_right_address_or_none(all_builds):
    if len(all_builds) < 2:
        pytest.skip("one Go toolchain only")
    for source in all_builds.values():
        for target in all_builds.values():
            if source is target:
                continue
            found = 0
            for name, signatures in source.signatures.items():
                if (got := target.stripped.global_address(name, signatures)) is not None:
                    # runtime.ncpu of Go 1.19 is in no later release: finding it there would be a guess.
                    assert name in target.plain.symbols and got[0] == target.truth(name), (source, target, name)
                    found += 1
            assert found >= 3, (source.toolchain, target.toolchain)  # not vacuous


@pytest.mark.go
def test_a_variable_is_none_rather_than_a_guess(all_builds):
    builds = next(iter(all_builds.values()))
    stripped, signatures = builds.stripped, builds.signatures["runtime.allgs"]
    assert stripped.global_address("runtime.allgs", []) is None
    assert stripped.global_address("runtime.allgs", [RefSignature("main.nosuchfunction", 0, 0)]) is None
    # Two signatures that disagree (one moved by 8 bytes): none, not either.
    shifted = RefSignature(signatures[1].function, signatures[1].ordinal, signatures[1].delta + 8)
    assert stripped.global_address("runtime.allgs", [signatures[0], shifted]) is None
    # An ordinal past the function's references finds nothing.
    assert stripped.global_address("runtime.allgs", [RefSignature(signatures[0].function, 10_000, 0)]) is None
    # An address in no data segment (the code, here) is none.
    main = stripped.pclntab.func_named("main.main")
    first = data_references(stripped.read(main.entry, main.end - main.entry), main.entry, "amd64")[0]
    assert stripped.global_address("x", [RefSignature("main.main", 0, first - main.entry)]) is None


@pytest.fixture(scope="module")
def arm64_builds(tmp_path_factory) -> Builds:
    """The plain target for arm64, plain and stripped, cross-built with the installed Go."""
    out = tmp_path_factory.mktemp("arm64")
    env = TOOLCHAINS["go"].run_env() | {"GOARCH": "arm64", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    for name, flags in (("plain", ()), ("stripped", STRIPPED)):
        subprocess.run(["go", "build", *flags, "-o", str(out / name), "./plain"], cwd=TARGETS_DIR, env=env,
                       check=True, capture_output=True)
    return Builds("go", out / "plain", out / "stripped")


@pytest.mark.go
def test_arm64_signatures_find_the_variables_in_the_stripped_build(arm64_builds):
    assert arm64_builds.stripped.arch == "arm64"
    expected = {name for name in WANTED if name in arm64_builds.plain.symbols} - {"runtime.buildVersion"}
    assert set(arm64_builds.signatures) == expected
    for name, signatures in arm64_builds.signatures.items():
        assert arm64_builds.stripped.global_address(name, signatures) == (arm64_builds.truth(name), "machine code")


# -- changed code ---------------------------------------------------------------------


@st.composite
def changed_in_place(draw, code: bytes) -> bytes:
    """`code` with bytes flipped or spans overwritten, or cut short: what stays is where it was.
    (Code inserted or deleted moves what follows off the addresses its RIP-relative
    displacements count from: every reference of the function moves by the same amount,
    which no build makes, so the votes of one function can agree on a wrong address.)"""
    data = bytearray(code)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        where = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "overwrite", "cut"]))
        if action == "flip":
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif action == "overwrite":
            span = draw(st.binary(min_size=1, max_size=16))
            data[where:where + len(span)] = span[:len(data) - where]
        else:
            del data[where:]
    return bytes(data)


def resolve_with_changed_code(data, builds: Builds, change) -> dict[str, int]:
    """The variables found in the stripped build with the code of some signatures' functions changed."""
    stripped = builds.stripped
    functions = sorted({s.function for signatures in builds.signatures.values() for s in signatures})
    code = {}
    for name in data.draw(st.lists(st.sampled_from(functions), min_size=1, max_size=6, unique=True)):
        func = stripped.pclntab.func_named(name)
        code[name] = data.draw(change(stripped.read(func.entry, func.end - func.entry)))

    def read_code(func):
        return code[func.name] if func.name in code else stripped.read(func.entry, func.end - func.entry)

    found = resolve_globals(stripped.pclntab, read_code, "amd64", builds.signatures)
    event(f"{len(builds.signatures) - len(found)} left out")
    return found


@pytest.mark.go
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_code_changed_in_place_gives_the_right_address_or_none(data, all_builds):
    builds = all_builds.get("go") or next(iter(all_builds.values()))
    for name, address in resolve_with_changed_code(data, builds, changed_in_place).items():
        assert address == builds.truth(name), name


@pytest.mark.go
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_changed_code_finds_addresses_or_nothing(data, all_builds):
    """Bytes inserted, deleted, duplicated too: no crash, no hang, each address an integer."""
    builds = all_builds.get("go") or next(iter(all_builds.values()))
    found = resolve_with_changed_code(data, builds, mutated)
    assert all(isinstance(address, int) for address in found.values())


@pytest.mark.go
def test_debians_own_stripped_go_command(all_builds):
    """/usr/lib/go-1.19/bin/go: Debian's build (stripped, dynamically linked, Go 1.19.8), not
    ours. The signatures of our plain Go 1.19 build find every variable there; the wait
    reasons found read as the runtime names them."""
    debian = Path(TOOLCHAINS["go1.19"].go)
    if "go1.19" not in all_builds or not debian.exists():
        pytest.skip("Debian's golang-1.19 is not installed")
    binary = GoBinary.open(str(debian))
    assert not binary.symbols and binary.pclntab.magic_version == "1.18"
    signatures = all_builds["go1.19"].signatures
    found = {name: binary.global_address(name, signs) for name, signs in signatures.items()}
    assert None not in found.values() and all(how == "machine code" for _, how in found.values()), found
    assert len({address for address, _ in found.values()}) == len(found) == len(signatures)
    assert wait_reason(binary, found["runtime.waitReasonStrings"][0], 1) == "GC assist marking"
