"""Source files of a profiled program, read when this host has them (dev builds do).

A profile names its source files, and a profile is untrusted (a remote
target's, or a file someone handed over): it may name /etc/shadow, a FIFO,
/dev/tty or a project's .env. So a file is read only if it is Go source or
assembly (.go, .s), lies under one of the program's source roots, is a regular
file, and is not too big. The roots are directories the user names, and the
modules the profile's own functions prove. A function proves its module when
its file is where its package's files must be: under the nearest go.mod above
it, the module path and the package give the directory (GOROOT's src/go.mod is
module "std"). A profile does not tell a main package's import path, so a main
function's file proves its module by declaring `package main`.
Reading blocks: call it off the event loop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import PurePath
from urllib.parse import unquote

from gotop.model.profile import Profile
from gotop.safefiles import Refused, read_regular

MAX_SOURCE_BYTES = 4 << 20  # a bigger "source file" is not one worth listing
SOURCE_SUFFIXES = (".go", ".s")
_MAX_GO_MOD_BYTES = 1 << 20
_MODULE_LINE = re.compile(r'^\s*module\s+"?([^\s"]+)"?\s*(?://.*)?$', re.MULTILINE)
# A Go file's first token after any comments (possessive: no backtracking on hostile text).
_MAIN_CLAUSE = re.compile(r"\ufeff?(?:\s|//[^\n]*+|/\*.*?\*/)*+package\s+main\b", re.DOTALL)


class SourceUnavailable(OSError):
    """Why a source file is not shown; the message names the file (one line)."""


class SourceFiles:
    """Reads the source files of one profiled program, under its source roots only."""

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = tuple(sorted({os.path.realpath(root) for root in roots}))

    @classmethod
    def of(cls, profile: Profile, extra_roots: Iterable[str] = ()) -> SourceFiles:
        """The roots the profile's functions prove (see the module doc), and `extra_roots`."""
        return cls([*_module_roots(profile), *extra_roots])

    def read(self, path: str) -> str:
        """The file's text; SourceUnavailable saying why not."""
        if "\0" in path:
            raise SourceUnavailable(f"{path!r}: not a file name")
        if not os.path.isabs(path):
            raise SourceUnavailable(f"{path}: not on this host (a -trimpath build names files by module path)")
        real = os.path.realpath(path)
        try:
            before = os.lstat(real)
        except FileNotFoundError:
            raise SourceUnavailable(f"{path}: not on this host") from None
        except OSError as e:
            raise SourceUnavailable(f"{path}: {e.strerror}") from None
        if not self._holds(real):
            raise SourceUnavailable(f"{path}: outside the program's source directories: not read")
        if not real.endswith(SOURCE_SUFFIXES):
            raise SourceUnavailable(f"{path}: not Go source: not read")
        return _read_regular(path, real, before, MAX_SOURCE_BYTES).decode("utf-8", errors="replace")

    def _holds(self, real: str) -> bool:
        return self.root_of(real) is not None

    def root_of(self, path: str) -> str | None:
        """The innermost source root that holds `path`, if one does."""
        real = os.path.realpath(path)
        held = [root for root in self.roots if os.path.commonpath((root, real)) == root]
        return max(held, key=len, default=None)

    def text_or_why(self, path: str) -> tuple[str | None, str]:
        """The file's text and "", or None and why it is not shown (one line naming the file)."""
        try:
            return self.read(path), ""
        except SourceUnavailable as e:
            return None, str(e)
        except OSError as e:  # the read itself failed (an I/O error)
            return None, f"{path}: {e.strerror or e}"


def _read_regular(shown: str, path: str, expected: os.stat_result, limit: int) -> bytes:
    """The bytes of `path` if it is a regular file (`expected`, its lstat) of at
    most `limit` bytes (safefiles.read_regular); SourceUnavailable naming `shown`."""
    try:
        return read_regular(path, limit, expected=expected)
    except Refused as e:
        raise SourceUnavailable(f"{shown}: {e}: not read") from None
    except OSError as e:
        raise SourceUnavailable(f"{shown}: {e.strerror}") from None


def _module_roots(profile: Profile) -> set[str]:
    """The directories of the modules the profile's functions prove (see the module doc)."""
    sites = {(os.path.normpath(f.filename), _package(f.system_name or f.name)) for f in profile.functions.values()
             if os.path.isabs(f.filename) and "\0" not in f.filename and f.filename.endswith(SOURCE_SUFFIXES)}
    go_mods: dict[str, str | None] = {}  # each directory's go.mod's module path, once read
    roots: set[str] = set()
    for file, package in sorted(sites, key=lambda site: site[1] == "main"):  # main's proof reads the file: last
        found = _nearest_module(os.path.dirname(file), go_mods)
        if found is not None and found[0] not in roots and _belongs(file, package, *found):
            roots.add(found[0])
    return roots


def _package(symbol: str) -> str:
    """The import path of a Go symbol's package: 'example.com/m/pkg' of
    'example.com/m/pkg.(*T).M'; Go escapes dots in the last element as %2e."""
    symbol = symbol.split("[", 1)[0]  # a generic instantiation's type arguments
    dot = symbol.find(".", symbol.rfind("/") + 1)
    return unquote(symbol[:dot]) if dot > 0 else ""


def nearest_module(directory: str) -> tuple[str, str] | None:
    """The directory of the nearest go.mod at or above `directory`, and its module path."""
    return _nearest_module(directory, {})


def _nearest_module(directory: str, go_mods: dict[str, str | None]) -> tuple[str, str] | None:
    """The directory of the nearest go.mod at or above `directory`, and its module path."""
    for candidate in (directory, *map(str, PurePath(directory).parents)):
        if candidate not in go_mods:
            go_mods[candidate] = _module_path(os.path.join(candidate, "go.mod"))
        module = go_mods[candidate]
        if module is not None:
            return candidate, module
    return None


def _belongs(file: str, package: str, root: str, module: str) -> bool:
    """Whether a function of `package` may be defined in `file` of module `module` at `root`."""
    directory = os.path.dirname(file)
    if package == "main":
        return _declares_main(file)
    if module == "std":  # GOROOT/src: 'runtime' is src/runtime
        return directory == os.path.join(root, package)
    if package == module or package.startswith(module + "/"):
        return directory == root + package[len(module):]
    return False


def _declares_main(file: str) -> bool:
    try:
        data = _read_regular(file, file, os.lstat(file), MAX_SOURCE_BYTES)
    except OSError:
        return False
    return _MAIN_CLAUSE.match(data.decode("utf-8", errors="replace")) is not None


def _module_path(go_mod: str) -> str | None:
    try:
        data = _read_regular(go_mod, go_mod, os.lstat(go_mod), _MAX_GO_MOD_BYTES)
    except OSError:
        return None
    match = _MODULE_LINE.search(data.decode("utf-8", errors="replace"))
    return match[1] if match else None
