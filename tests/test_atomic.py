"""b2b.atomic: a failed write leaves the old file and no temporary file behind."""

import numpy as np
import pytest

from b2b.atomic import atomic_path, atomic_write, write_text


def test_write_text_replaces_and_leaves_no_temporary(tmp_path):
    f = tmp_path / "a.txt"
    write_text(f, "first")
    write_text(f, "second ünïcode")
    assert f.read_text(encoding="utf-8") == "second ünïcode"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    f = tmp_path / "x.npy"
    atomic_write(f, lambda fh: np.save(fh, np.arange(3)))

    def half_then_fail(fh):
        fh.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(f, half_then_fail)
    np.testing.assert_array_equal(np.load(f), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_atomic_path_for_writers_that_take_a_name(tmp_path):
    f = tmp_path / "out.bin"
    with atomic_path(f) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.")
        tmp.write_bytes(b"abc")
        assert not f.exists()  # nothing visible under the final name until the block ends
    assert f.read_bytes() == b"abc"
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "never.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer crashed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
