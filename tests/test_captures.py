"""Saving captures: private files written whole, never through a symlink or
over another user's file (gotop often runs as root in shared directories)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from gotop.engine.captures import SaveError, save_private

DATA = b"\x1f\x8bprofile bytes"


def victim(tmp_path):
    """A file of ours that a planted symlink points at."""
    path = tmp_path / "elsewhere" / "precious"
    path.parent.mkdir()
    path.write_bytes(b"precious")
    path.chmod(0o644)
    return path


def left_in(directory) -> list[str]:
    return sorted(os.listdir(directory))


def test_a_new_file_is_private_and_whole(tmp_path):
    path = tmp_path / "heap.pb.gz"
    save_private(str(path), DATA)
    assert path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert left_in(tmp_path) == ["heap.pb.gz"]  # no temporary file left


def test_an_own_regular_file_is_replaced_and_made_private(tmp_path):
    path = tmp_path / "heap.pb.gz"
    path.write_bytes(b"old content, world-readable")
    path.chmod(0o644)
    save_private(str(path), DATA)
    assert path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_planted_symlink_is_not_followed(tmp_path):
    """Another user's symlink at the name gotop writes: the file it points at
    keeps its content and mode, and nothing is written."""
    target = victim(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    link = shared / "heap.pb.gz"
    link.symlink_to(target)
    with pytest.raises(SaveError, match=f"^{link}: is a symbolic link: not replaced"):
        save_private(str(link), DATA)
    assert target.read_bytes() == b"precious"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert link.is_symlink() and left_in(shared) == ["heap.pb.gz"]


def test_a_dangling_symlink_is_not_followed(tmp_path):
    """A symlink to a file that does not exist yet: O_CREAT would create it."""
    link = tmp_path / "heap.pb.gz"
    link.symlink_to(tmp_path / "created-through-the-link")
    with pytest.raises(SaveError, match="symbolic link"):
        save_private(str(link), DATA)
    assert left_in(tmp_path) == ["heap.pb.gz"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_another_users_file_is_not_replaced(tmp_path):
    path = tmp_path / "heap.pb.gz"
    path.write_bytes(b"theirs")
    os.chown(path, 65534, 65534)
    with pytest.raises(SaveError, match=f"^{path}: belongs to another user \\(uid 65534\\): not replaced$"):
        save_private(str(path), DATA)
    assert path.read_bytes() == b"theirs"


def test_a_directory_or_fifo_is_not_replaced(tmp_path):
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for name in ("dir", "fifo"):
        with pytest.raises(SaveError, match="exists and is not a regular file"):
            save_private(str(tmp_path / name), DATA)
    assert left_in(tmp_path) == ["dir", "fifo"]


def test_an_unwritable_directory_is_one_clear_error(tmp_path):
    with pytest.raises(SaveError, match="^/proc/heap.pb.gz: cannot save: "):
        save_private("/proc/heap.pb.gz", DATA)


def test_a_temporary_that_cannot_be_removed_leaves_the_save_error(tmp_path):
    """An append-only directory (chattr +a) lets files be created, not renamed
    nor removed: the rename's error is the one shown, not the removal's."""
    shared = tmp_path / "append-only"
    shared.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+a", str(shared)]).returncode != 0:
        pytest.skip("chattr +a needs root and a file system with attributes")
    try:
        with pytest.raises(SaveError, match=f"^{shared / 'heap.pb.gz'}: cannot save: Operation not permitted$"):
            save_private(str(shared / "heap.pb.gz"), DATA)
    finally:
        subprocess.run(["chattr", "-a", str(shared)], check=True)
