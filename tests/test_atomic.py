"""atomic_write: a write that fails half way leaves the old file whole and no temporary file behind."""

import os

import pytest

from mappo_td.atomic import atomic_write


def test_a_failing_write_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_bytes(b"old contents\n")

    def half_then_fail(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["progress.csv"]  # no temporary file left


def test_a_write_replaces_the_file_whole_with_ordinary_permissions(tmp_path):
    path = tmp_path / "sub" / "agent_8.pt"  # the folder is made
    atomic_write(path, lambda f: f.write(b"first"))
    atomic_write(path, lambda f: f.write(b"second"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_bytes() == b"second" and (path.stat().st_mode & 0o777) == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["agent_8.pt"]
