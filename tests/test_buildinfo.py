"""The build info reader against real Go binaries, with `go version -m -json`
(the installed Go, which reads every layout) as the oracle."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from elfbytes import MAGIC, Elf, overwrite, patched, without_go_note, without_section_headers
from gotargets import TARGETS_DIR, TOOLCHAINS, build_targets
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gotop.discovery.buildinfo import (
    BuildInfoError,
    GoBuildInfo,
    Module,
    _go_unquote_prefix,
    _parse_modinfo,
    read_build_info,
)

SAMPLES = Path(__file__).resolve().parent / "samples"
FZF = SAMPLES / "binaries" / "fzf-go1.15"  # Go 1.15.9: the pointer layout
TARGET_NAMES = ("agentpprof", "pprofonly", "plain")
# What one read of any file may cost, whatever its bytes say.
MAX_TOTAL_READ = 4 << 20
MAX_SINGLE_READ = 1 << 20
# The ldflags value of the "escapes" build: Go quotes it with \" \\ \t \x01 \u00a0 escapes.
ESCAPES_LDFLAGS = "-X 'main.foo=a\"b\\c\td\x01e\u00a0f é'"

GO_ENV = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}


def go(*args: str, cwd: Path, **env: str) -> str:
    result = subprocess.run(["go", *args], cwd=cwd, env=GO_ENV | env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def go_version_m(binary: Path) -> GoBuildInfo:
    """What `go version -m -json` says about a binary, as a GoBuildInfo."""
    raw = json.loads(go("version", "-m", "-json", str(binary), cwd=binary.parent))

    def module(m: dict | None) -> Module | None:
        if not m:
            return None
        return Module(m["Path"], m.get("Version", ""), m.get("Sum", ""), module(m.get("Replace")))

    return GoBuildInfo(
        go_version=raw["GoVersion"],
        path=raw.get("Path", ""),
        main=module(raw.get("Main")),
        deps=tuple(module(d) for d in raw.get("Deps") or ()),
        settings=tuple((s["Key"], s.get("Value", "")) for s in raw.get("Settings") or ()),
    )


# -- the binaries, built once per module ----------------------------------------


@pytest.fixture(scope="module")
def toolchain_binaries() -> dict[str, Path]:
    """The targets built by each available toolchain: {"go1.19/plain": path, ...}."""
    out = {}
    for toolchain in TOOLCHAINS:
        if TOOLCHAINS[toolchain].available():
            directory = build_targets(toolchain)
            out |= {f"{toolchain}/{name}": directory / name for name in TARGET_NAMES}
    return out


DEMO_FILES = {
    "go.mod": "module example.com/demo\n\ngo 1.18\n\nrequire example.com/lib v0.0.0\n\n"
              "replace example.com/lib => ./lib\n",
    "main.go": 'package main\n\nimport "example.com/lib"\n\nvar foo string\n\n'
               "func main() { println(lib.Name, foo) }\n",
    "lib/go.mod": "module example.com/lib\n\ngo 1.18\n",
    "lib/lib.go": 'package lib\n\nconst Name = "lib"\n',
}


def write_demo(directory: Path) -> Path:
    for name, text in DEMO_FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def git(*args: str, cwd: Path) -> str:
    identity = ["-c", "user.name=gotop tests", "-c", "user.email=tests@gotop.invalid"]
    return subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def special_binaries(tmp_path_factory) -> dict[str, Path]:
    """Binaries built with the installed Go in unusual ways."""
    out_dir = tmp_path_factory.mktemp("special")
    demo = write_demo(tmp_path_factory.mktemp("demo"))
    builds = {
        "replace": (),
        "ldflags": ("-ldflags=-X 'main.foo=bar baz'",),
        "escapes": ("-ldflags=" + ESCAPES_LDFLAGS,),
        "trimpath": ("-trimpath",),
        "pie": ("-buildmode=pie",),
    }
    for name, flags in builds.items():
        go("build", "-o", str(out_dir / name), *flags, ".", cwd=demo)

    for goarch in ("386", "s390x"):
        go("build", "-o", str(out_dir / f"plain-{goarch}"), "./plain", cwd=TARGETS_DIR,
           GOARCH=goarch, GOFLAGS="-mod=mod -buildvcs=false")
    return {path.name: path for path in out_dir.iterdir()}


@pytest.fixture(scope="module")
def vcs_build(tmp_path_factory) -> tuple[Path, str]:
    """A binary built in a git work tree with a modified file, and the commit it was built at."""
    vcs = write_demo(tmp_path_factory.mktemp("vcs"))
    git("init", "-q", cwd=vcs)
    git("add", ".", cwd=vcs)
    git("commit", "-q", "-m", "demo", cwd=vcs)
    (vcs / "main.go").write_text(DEMO_FILES["main.go"] + "// modified\n")
    go("build", "-o", "demo", ".", cwd=vcs, GOFLAGS="-buildvcs=true")
    return vcs / "demo", git("rev-parse", "HEAD", cwd=vcs)


def all_go_binaries(toolchain_binaries, special_binaries) -> dict[str, Path]:
    return {**toolchain_binaries, "fzf-go1.15": FZF, **special_binaries}


# -- agreement with go version -m ----------------------------------------------


@pytest.mark.go
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("name", TARGET_NAMES)
def test_targets_match_go_version_m(toolchain, name, toolchain_binaries):
    key = f"{toolchain}/{name}"
    if key not in toolchain_binaries:
        pytest.skip(f"Go toolchain {toolchain} is not installed")
    binary = toolchain_binaries[key]
    info = read_build_info(binary)
    assert info == go_version_m(binary)
    assert info.main is not None and info.path == f"{info.main.path}/{name}"
    assert info.setting("GOOS") == "linux"


@pytest.mark.go
@pytest.mark.parametrize("name", ["replace", "ldflags", "escapes", "trimpath", "pie", "plain-386", "plain-s390x"])
def test_special_builds_match_go_version_m(name, special_binaries):
    binary = special_binaries[name]
    assert read_build_info(binary) == go_version_m(binary)


@pytest.mark.go
def test_replaced_dependency(special_binaries):
    info = read_build_info(special_binaries["replace"])
    assert info.deps == (Module("example.com/lib", "v0.0.0", "", Module("./lib", "(devel)", "")),)
    assert info.to_json()["deps"][0]["replace"] == {"path": "./lib", "version": "(devel)", "sum": "",
                                                    "replace": None}


@pytest.mark.go
def test_quoted_ldflags_are_unquoted_to_what_was_passed(special_binaries):
    assert read_build_info(special_binaries["ldflags"]).setting("-ldflags") == "-X 'main.foo=bar baz'"
    assert read_build_info(special_binaries["escapes"]).setting("-ldflags") == ESCAPES_LDFLAGS


@pytest.mark.go
def test_trimpath_build_records_no_ldflags(special_binaries):
    info = read_build_info(special_binaries["trimpath"])
    assert info.setting("-trimpath") == "true"
    assert info.setting("-ldflags") is None


@pytest.mark.go
def test_vcs_stamping(vcs_build):
    binary, revision = vcs_build
    info = read_build_info(binary)
    assert info == go_version_m(binary)
    assert info.setting("vcs") == "git"
    assert info.setting("vcs.revision") == revision
    assert info.setting("vcs.modified") == "true"
    assert info.setting("vcs.time")


@pytest.mark.go
@pytest.mark.parametrize("name, goarch", [("plain-386", "386"), ("plain-s390x", "s390x")])
def test_cross_compiled(name, goarch, special_binaries):
    data = special_binaries[name].read_bytes()
    elf = Elf.of(data)
    assert (elf.is64, elf.order) == {"386": (False, "<"), "s390x": (True, ">")}[goarch]
    info = read_build_info(special_binaries[name])
    assert (info.setting("GOARCH"), info.setting("CGO_ENABLED")) == (goarch, "0")


@pytest.mark.go
def test_pointer_layout_gopath_build():
    info = read_build_info(FZF)
    assert info == go_version_m(FZF)
    assert (info.go_version, info.path, info.main, info.deps, info.settings) == ("go1.15.9", "", None, (), ())
    assert info.to_json() == {"go_version": "go1.15.9", "path": "", "main": None, "deps": [], "settings": {}}


@pytest.mark.go
def test_to_json_shape(toolchain_binaries):
    info = read_build_info(toolchain_binaries["go/agentpprof"])
    data = json.loads(json.dumps(info.to_json()))
    assert data["go_version"] == info.go_version
    assert data["main"] == {"path": info.main.path, "version": info.main.version, "sum": info.main.sum,
                            "replace": None}
    assert [d["path"] for d in data["deps"]] == [d.path for d in info.deps]
    assert list(data["settings"].items()) == list(info.settings)


@pytest.mark.go
def test_file_object_gives_the_same_answer_as_the_path(toolchain_binaries):
    binary = toolchain_binaries["go/plain"]
    with open(binary, "rb") as buffered:
        assert read_build_info(buffered) == read_build_info(binary)
    assert read_build_info(io.BytesIO(binary.read_bytes())) == read_build_info(binary)


@pytest.mark.go
def test_deleted_binary_through_proc_exe(toolchain_binaries, tmp_path):
    copy = tmp_path / "plain-copy"
    shutil.copy(toolchain_binaries["go/plain"], copy)
    proc = subprocess.Popen([str(copy)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        exe = f"/proc/{proc.pid}/exe"
        deadline = time.monotonic() + 10  # until the child has exec'd the copy
        while os.readlink(exe) != str(copy):
            assert time.monotonic() < deadline, "the target did not start"
            time.sleep(0.01)
        copy.unlink()
        assert os.readlink(exe).endswith("(deleted)")
        assert read_build_info(exe) == read_build_info(toolchain_binaries["go/plain"])
    finally:
        proc.kill()
        proc.wait()


# -- fallbacks -------------------------------------------------------------------


FALLBACK_BINARIES = ["go/plain", "go1.19/plain", "fzf-go1.15", "plain-386", "plain-s390x", "pie"]


def binary_bytes(name, toolchain_binaries, special_binaries) -> bytes:
    binaries = all_go_binaries(toolchain_binaries, special_binaries)
    if name not in binaries:
        pytest.skip(f"{name} was not built (toolchain missing)")
    return binaries[name].read_bytes()


@pytest.mark.go
@pytest.mark.parametrize("name", FALLBACK_BINARIES)
def test_stripped_section_headers_fall_back_to_the_data_segment(name, toolchain_binaries, special_binaries):
    data = binary_bytes(name, toolchain_binaries, special_binaries)
    stripped = without_section_headers(data)
    assert Elf.of(stripped).get("shnum") == 0
    assert read_build_info(io.BytesIO(stripped)) == read_build_info(io.BytesIO(data))


@pytest.mark.go
@pytest.mark.parametrize("name", FALLBACK_BINARIES)
def test_without_build_info_the_go_note_still_marks_go(name, toolchain_binaries, special_binaries):
    """Like a Go < 1.13 binary: no build info blob, but the Go build ID note."""
    data = binary_bytes(name, toolchain_binaries, special_binaries)
    no_blob = overwrite(data, Elf.of(data).blob_offset(), b"\x00" * len(MAGIC))
    assert read_build_info(io.BytesIO(no_blob)) == GoBuildInfo(go_version="")
    assert read_build_info(io.BytesIO(without_section_headers(no_blob))) == GoBuildInfo(go_version="")
    no_note = without_go_note(no_blob)
    assert no_note != no_blob
    assert read_build_info(io.BytesIO(no_note)) is None


# -- not Go ----------------------------------------------------------------------


def test_non_go_files_are_none(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a binary\n")
    empty = tmp_path / "empty"
    empty.touch()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # must not block
    for path in ["/bin/sleep", os.path.realpath(sys.executable), text, empty, tmp_path, "/dev/null", fifo]:
        assert read_build_info(path) is None, path
    for data in [b"", b"\x7fEL", b"MZ" + b"\x00" * 100, b"#!/bin/sh\n"]:
        assert read_build_info(io.BytesIO(data)) is None


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_build_info(tmp_path / "nope")


# -- corrupt input: clear errors, bounded reads ----------------------------------


class CountingFile:
    """A read-only file over bytes that records what the reader asks for."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.bytes_read = 0
        self.largest_read = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: len(self._data)}[whence] + offset
        assert self._pos >= 0
        return self._pos

    def read(self, size: int) -> bytes:
        assert size >= 0, "the reader must never read to the end of the file"
        self.largest_read = max(self.largest_read, size)
        chunk = bytes(self._data[self._pos:self._pos + size])
        self._pos += len(chunk)
        self.bytes_read += len(chunk)
        return chunk


def read_bounded(data: bytes) -> GoBuildInfo | BuildInfoError | None:
    """The reader's answer (an error is returned, not raised), after checking it
    read and asked for a bounded number of bytes."""
    file = CountingFile(data)
    try:
        result = read_build_info(file)
    except BuildInfoError as e:
        message = str(e)
        assert message and "\n" not in message
        result = e
    assert file.bytes_read <= MAX_TOTAL_READ
    assert file.largest_read <= MAX_SINGLE_READ
    if isinstance(result, GoBuildInfo):
        json.dumps(result.to_json())
    return result


def test_corrupt_elf_headers_are_build_info_errors():
    for data in [b"\x7fELF\x02\x01", b"\x7fELF\x03\x01" + b"\x00" * 58, b"\x7fELF\x02\x07" + b"\x00" * 58]:
        assert isinstance(read_bounded(data), BuildInfoError)


@pytest.mark.go
@pytest.mark.parametrize("field", ["phnum", "shnum", "phoff", "shoff"])
def test_hostile_header_tables(field, toolchain_binaries):
    data = toolchain_binaries["go/plain"].read_bytes()
    hostile = patched(data, Elf.of(data), **{field: 0xFFFF if field.endswith("num") else 1 << 31})
    assert isinstance(read_bounded(hostile), BuildInfoError)


@pytest.mark.go
def test_huge_build_info_section_is_scanned_boundedly(toolchain_binaries):
    data = toolchain_binaries["go/plain"].read_bytes()
    elf = Elf.of(data)
    header_at, _offset, _size = elf.section(".go.buildinfo")
    huge = overwrite(data, header_at + 32, (1 << 62).to_bytes(8, "little"))  # sh_size of ELF64 LE
    assert read_bounded(huge) == read_build_info(io.BytesIO(data))


@pytest.mark.go
@pytest.mark.parametrize("length", [b"\xff\xff\xff\xff\x0f", b"\xff" * 11, b"\x80\x80\x40"])
def test_hostile_inline_string_lengths(length, toolchain_binaries):
    data = toolchain_binaries["go/plain"].read_bytes()
    version_length_at = Elf.of(data).blob_offset() + 32
    result = read_bounded(overwrite(data, version_length_at, length))
    assert isinstance(result, BuildInfoError)


def test_hostile_pointer_layout_strings():
    data = FZF.read_bytes()
    elf = Elf.of(data)
    blob = elf.blob_offset()
    (header_at, _), _ = elf.pointer_layout_strings()
    cases = [
        overwrite(data, blob + 16, (0x7FFF_0000_0000).to_bytes(8, "little")),  # version header unmapped
        overwrite(data, header_at + 8, (1 << 40).to_bytes(8, "little")),  # version length huge
        overwrite(data, header_at, (0x7FFF_0000_0000).to_bytes(8, "little")),  # version data unmapped
        overwrite(data, blob + 14, b"\x03"),  # pointer size
    ]
    for case in cases:
        assert isinstance(read_bounded(case), BuildInfoError)
    # A zero pointer is left for the dynamic loader to fill (PIE): unknown, not corrupt.
    unknown = read_bounded(overwrite(data, blob + 16, bytes(8)))
    assert unknown == GoBuildInfo(go_version="")


def test_malformed_module_info_is_a_one_line_error():
    with pytest.raises(BuildInfoError, match="line 2"):
        _parse_modinfo("go1.22", "path\tx\nmod\tonly-one-column\n")
    with pytest.raises(BuildInfoError):
        _parse_modinfo("go1.22", "=>\ta\tb\tc\n")
    with pytest.raises(BuildInfoError):
        _parse_modinfo("go1.22", 'build\t-ldflags="unterminated\n')
    assert _parse_modinfo("go1.22", "path\tx\ngo\tignored\n\npath\tunterminated") == GoBuildInfo("go1.22", "x")


# -- property-based --------------------------------------------------------------

HYPOTHESIS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PADDING = bytes(8 << 20)  # appended, so reading the whole file would break the read bound


@pytest.fixture(scope="module")
def fuzz_bases(toolchain_binaries, special_binaries) -> list[tuple[bytes, list[tuple[int, int]]]]:
    """(bytes, regions to aim at) of one binary per layout and ELF flavour."""
    names = ["go/agentpprof", "fzf-go1.15", "plain-386", "plain-s390x"]
    binaries = all_go_binaries(toolchain_binaries, special_binaries)
    bases = [binaries[name].read_bytes() for name in names]
    return [(data + PADDING, Elf.of(data).regions()) for data in bases]


EDIT_BYTES = st.one_of(
    st.binary(min_size=1, max_size=8),
    st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\xff\xff\xff\x7f", b"\x80" * 10, b"\n", b"\t", b'"', b"\\"]),
)


@pytest.mark.go
@HYPOTHESIS
@given(data=st.data())
def test_mutated_binaries_never_crash_or_read_unboundedly(data, fuzz_bases):
    base, regions = data.draw(st.sampled_from(fuzz_bases))
    mutated = bytearray(base)
    for _ in range(data.draw(st.integers(1, 12))):
        start, length = data.draw(st.sampled_from(regions))
        at = start + data.draw(st.integers(0, max(length - 1, 0)))
        edit = data.draw(EDIT_BYTES)
        mutated[at:at + len(edit)] = edit
    event(type(read_bounded(bytes(mutated))).__name__)


@pytest.mark.go
@HYPOTHESIS
@given(data=st.data())
def test_truncated_binaries_never_crash_or_read_unboundedly(data, fuzz_bases):
    base, regions = data.draw(st.sampled_from(fuzz_bases))
    start, length = data.draw(st.sampled_from(regions))
    cut = data.draw(st.one_of(st.integers(0, len(base)), st.integers(start, start + length)))
    event(type(read_bounded(base[:cut])).__name__)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_arbitrary_module_info_parses_or_fails_cleanly(text):
    try:
        _parse_modinfo("go1.22", text)
    except BuildInfoError as e:
        assert "\n" not in str(e)


BMP_TEXT = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]))


@settings(max_examples=500, deadline=None)
@given(BMP_TEXT, st.booleans(), st.text(max_size=5))
def test_unquote_inverts_json_quoting(text, ascii_only, tail):
    """JSON string escapes are a subset of Go's for the BMP, so json.dumps is an
    independent quoter to check Go unquoting against."""
    quoted = json.dumps(text, ensure_ascii=ascii_only)
    assert _go_unquote_prefix(quoted + tail) == (text, len(quoted))


def test_unquote_go_only_escapes():
    literal = r'"\a\v\x41\101\U0001F600\u00e9\xff"'
    assert _go_unquote_prefix(literal + "=x") == ("\a\vAA\U0001F600é\ufffd", len(literal))
    assert _go_unquote_prefix("`raw \\n\r`=x") == ("raw \\n", 9)
    for bad in [r'"\q"', r'"\'"', r'"\xZZ"', r'"\400"', r'"\uD800"', r'"\U00110000"', '"a\nb"', '"open', "`open"]:
        with pytest.raises(BuildInfoError):
            _go_unquote_prefix(bad)
