"""Source files of a profiled program, read when this host has them (dev builds do).

A profile names its source files, and a profile is untrusted (a remote
target's, or a file someone handed over): it may name /etc/shadow, a FIFO or
/dev/tty. So a file is read only if it lies under one of the program's source
roots, is a regular file, and is not too big. The roots are the module
directories the profile's own functions prove: walking up from a function's
file to the nearest go.mod, whose module path must match the function's
package and directory (GOROOT's src/go.mod is module "std"), plus directories
the user names. Reading blocks: call it off the event loop.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from urllib.parse import unquote

from gotop.model.profile import Profile

MAX_SOURCE_BYTES = 4 << 20  # a bigger "source file" is not one worth listing
_MAX_GO_MOD_BYTES = 1 << 20
_MODULE_LINE = re.compile(r'^\s*module\s+"?([^\s"]+)"?\s*(?://.*)?$', re.MULTILINE)


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
        return _read_regular(path, real, before, MAX_SOURCE_BYTES).decode("utf-8", errors="replace")

    def _holds(self, real: str) -> bool:
        return any(os.path.commonpath((root, real)) == root for root in self.roots)


def _read_regular(shown: str, path: str, expected: os.stat_result, limit: int) -> bytes:
    """The bytes of `path` if it is a regular file (`expected`, its lstat) of at
    most `limit` bytes. O_NONBLOCK: a FIFO swapped in meanwhile cannot hang the
    open; the fstat after it must find the file lstat saw."""
    if not stat.S_ISREG(expected.st_mode):
        raise SourceUnavailable(f"{shown}: not a regular file: not read")
    if expected.st_size > limit:
        raise SourceUnavailable(f"{shown}: larger than {limit >> 20} MiB: not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise SourceUnavailable(f"{shown}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (expected.st_dev, expected.st_ino):
            raise SourceUnavailable(f"{shown}: replaced while being opened: not read")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise SourceUnavailable(f"{shown}: larger than {limit >> 20} MiB: not read")
    return data


def _module_roots(profile: Profile) -> set[str]:
    """The directories of the modules whose layout the profile's functions match."""
    packages_by_dir: dict[str, set[str]] = {}
    for function in profile.functions.values():
        if os.path.isabs(function.filename) and "\0" not in function.filename:
            directory = os.path.dirname(os.path.normpath(function.filename))
            packages_by_dir.setdefault(directory, set()).add(_package(function.system_name or function.name))
    modules = _GoModFinder()
    roots = set()
    for directory, packages in packages_by_dir.items():
        found = modules.nearest(directory)
        if found is None:
            continue
        root, module = found
        if any(_lives_at(package, directory, root, module) for package in packages):
            roots.add(root)
    return roots


def _package(symbol: str) -> str:
    """The import path of a Go symbol's package: 'example.com/m/pkg' of
    'example.com/m/pkg.(*T).M'; Go escapes dots in the last element as %2e."""
    symbol = symbol.split("[", 1)[0]  # a generic instantiation's type arguments
    dot = symbol.find(".", symbol.rfind("/") + 1)
    return unquote(symbol[:dot]) if dot > 0 else ""


def _lives_at(package: str, directory: str, root: str, module: str) -> bool:
    """Whether `package`'s files belong in `directory` in module `module` at `root`."""
    if package == "main":
        return True  # a main package may sit anywhere in its module
    if module == "std":  # GOROOT/src: 'runtime' is src/runtime
        return directory == os.path.join(root, package)
    if package == module or package.startswith(module + "/"):
        return directory == root + package[len(module):]
    return False


class _GoModFinder:
    """The nearest go.mod above a directory, and its module path; cached per directory."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[str, str] | None] = {}

    def nearest(self, directory: str) -> tuple[str, str] | None:
        walked = []
        found: tuple[str, str] | None = None
        while directory not in self._found:
            walked.append(directory)
            module = _module_path(os.path.join(directory, "go.mod"))
            if module is not None:
                found = (directory, module)
                break
            parent = os.path.dirname(directory)
            if parent == directory:
                break
            directory = parent
        else:
            found = self._found[directory]
        for seen in walked:
            self._found[seen] = found
        return found


def _module_path(go_mod: str) -> str | None:
    try:
        data = _read_regular(go_mod, go_mod, os.lstat(go_mod), _MAX_GO_MOD_BYTES)
    except OSError:
        return None
    match = _MODULE_LINE.search(data.decode("utf-8", errors="replace"))
    return match[1] if match else None
