#!/usr/bin/env python3
"""Write the runtime layout tables gotop/model/golayouts/go1.NN-ARCH.json.

For each release of RELEASES: fetch it (GOTOOLCHAIN=go1.N.M, through the module
proxy: about 70 MB once, then it is in the Go module cache), build the probe
program tests/layoutprobe with it for each architecture of ARCHES (linux), read
the runtime's layouts from the probe's DWARF and its wait reason strings from its
data, and write the table of that minor release and architecture. The tests
(tests/test_golayout.py) build the same probe with the toolchains the machine
has and check the tables against its DWARF.

Usage (from the repository, with its .venv):
  .venv/bin/python tests/gen_layouts.py [RELEASE ...]       write the tables (default: all RELEASES)
  .venv/bin/python tests/gen_layouts.py --compare RELEASE ...
        build other releases (patch releases, say) and print how they differ from their minor's table
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from elftools.elf.elffile import ELFFile
from gotargets import CACHE_DIR, Toolchain

from gotop.model.golayout import (
    GLOBALS,
    READER_CONSTANTS,
    READER_NEEDS,
    READER_SIZES,
    TABLES_DIR,
    RuntimeLayout,
    go_minor,
    layout_from_dwarf,
    layout_table,
    layout_to_json,
    table_name,
)
from gotop.model.machinecode import RefSignature
from gotop.sources.gobinary import GoBinary

# The newest patch release of each minor release when the tables were written,
# but go1.26.8 (the machine's own Go) and go1.27.3 (the one tests/gotargets.py
# fetches): the tests check those tables against the toolchains they have.
RELEASES = (
    "go1.18.10", "go1.19.13", "go1.20.14", "go1.21.13", "go1.22.12",
    "go1.23.12", "go1.24.13", "go1.25.14", "go1.26.8", "go1.27.3",
)
# Their layouts differ: arm64's cache lines are 128 bytes, so the padded runtime
# structs (gcControllerState, mheap, workType, p) are laid out otherwise from go1.2x on.
ARCHES = ("amd64", "arm64")
PROBE_DIR = Path(__file__).resolve().parent / "layoutprobe"
TABLES = Path(__file__).resolve().parent.parent / "gotop" / "model" / TABLES_DIR


def release_toolchain(release: str) -> Toolchain:
    """A Go release fetched through the module proxy by the machine's go command."""
    return Toolchain(release, "go", (("GOTOOLCHAIN", release),))


def build_probe(toolchain: Toolchain, version: str, arch: str = "amd64") -> Path:
    """The probe built for linux/`arch` (plain: symbols and DWARF) with a toolchain
    whose `go env GOVERSION` is `version`; cached beside the test targets' builds."""
    digest = hashlib.sha256()
    for path in sorted(PROBE_DIR.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    binary = CACHE_DIR / f"layoutprobe-{version}-{arch}-{digest.hexdigest()[:16]}" / "layoutprobe"
    if binary.exists():
        return binary
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR))
    env = toolchain.run_env() | {"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": arch,
                                 "GOFLAGS": "-buildvcs=false", "GOWORK": "off"}
    result = subprocess.run([toolchain.go, "build", "-o", str(tmp / "layoutprobe"), "."],
                            cwd=PROBE_DIR, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building the layout probe with {version} for {arch} failed:\n{result.stderr}")
    try:
        tmp.rename(binary.parent)  # atomic: a concurrent builder may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return binary


def data_reader(elf: ELFFile) -> Callable[[int, int], bytes | None]:
    """Reads an ELF file's initialised data at link-time addresses (its PT_LOAD segments)."""
    def read(address: int, size: int) -> bytes | None:
        for segment in elf.iter_segments("PT_LOAD"):
            start = segment["p_vaddr"]
            if start <= address and address + size <= start + segment["p_filesz"]:
                elf.stream.seek(segment["p_offset"] + address - start)
                return elf.stream.read(size)
        return None
    return read


def binary_layout(binary: Path) -> RuntimeLayout:
    """The layout of a binary built with DWARF, wait reasons included."""
    with binary.open("rb") as file:
        elf = ELFFile(file)
        layout = layout_from_dwarf(elf.get_dwarf_info(), data_reader(elf))
    if layout is None:
        raise RuntimeError(f"{binary} has no Go runtime types in its DWARF")
    return layout


def signatures(binary: Path) -> dict[str, tuple[RefSignature, ...]]:
    """How to find each variable of GLOBALS in a build of this release without
    symbols: machinecode.derive_signatures run on the probe (it has its symbol table)."""
    found = GoBinary.open(str(binary)).derive_signatures(GLOBALS)
    return {name: tuple(found[name]) for name in sorted(found)}


def table_layout(release: str, arch: str) -> RuntimeLayout:
    """The table of a release on an architecture, as written to its file."""
    binary = build_probe(release_toolchain(release), release, arch)
    layout = binary_layout(binary)
    if layout.go != f"go1.{go_minor(release)}":
        raise RuntimeError(f"the probe built with {release} says it is {layout.go}")
    return dataclasses.replace(layout, origin=f"table {release} linux/{arch}", signatures=signatures(binary))


def differences(table: RuntimeLayout, other: RuntimeLayout) -> list[str]:
    """What a reader would see differently in `other` than in `table` (origin and signatures aside)."""
    lines = [f"{name}: {getattr(table, name)!r} vs {getattr(other, name)!r}"
             for name in ("go", "ptr_size", "wait_reasons") if getattr(table, name) != getattr(other, name)]
    for kind in ("fields", "sizes", "globals", "constants"):
        a, b = getattr(table, kind), getattr(other, kind)
        for key in sorted(set(a) | set(b)):
            if kind != "fields":
                if a.get(key) != b.get(key):
                    lines.append(f"{kind} {key}: {a.get(key)} vs {b.get(key)}")
                continue
            paths_a, paths_b = a.get(key, {}), b.get(key, {})
            lines += [f"{key}.{path}: {paths_a.get(path)} vs {paths_b.get(path)}"
                      for path in sorted(set(paths_a) | set(paths_b)) if paths_a.get(path) != paths_b.get(path)]
    return lines


def comparison(table: RuntimeLayout, other: RuntimeLayout) -> str:
    """One line: how `other` differs from `table`, by type, and whether what the reader needs does."""
    found = differences(table, other)
    if not found:
        return f"the same as {table.origin}"
    where = Counter(line.split(":")[0].rsplit(".", 1)[0] if line.startswith("runtime.") else line.split(":")[0]
                    for line in found)
    needs = [f"{need.type_name}.{path}" for need in READER_NEEDS for path in need.paths]
    needed = [line for line in found if line.split(":")[0] in needs
              or line.startswith(tuple(f"sizes {name}:" for name in READER_SIZES))
              or line.startswith(tuple(f"constants {name}:" for name in READER_CONSTANTS))]
    return (f"{len(found)} differences from {table.origin} ({', '.join(f'{k}: {n}' for k, n in where.items())});"
            f" in what the reader needs: {'; '.join(needed) if needed else 'none'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("releases", nargs="*", metavar="RELEASE", help="e.g. go1.22.12 (default: all RELEASES)")
    parser.add_argument("--compare", action="store_true",
                        help="print how each release differs from its minor's table; write nothing")
    args = parser.parse_args()
    for release in args.releases or RELEASES:  # one at a time: each fetch is about 70 MB
        for arch in ARCHES:
            layout = table_layout(release, arch)
            if args.compare:
                print(f"{release} {arch}: {comparison(layout_table(release, arch), layout)}")
                continue
            path = TABLES / table_name(layout.go, arch)
            path.write_text(layout_to_json(layout), encoding="utf-8")
            missing = layout.missing()
            print(f"{release} {arch}: {path.name}, {sum(map(len, layout.fields.values()))} fields"
                  + (f"; MISSING what the reader needs: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
