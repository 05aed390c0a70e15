"""b2b.files.atomic: a failed write leaves the old file and no temporary file behind."""

import numpy as np
import pytest

from b2b.files.atomic import atomic_path, atomic_write, write_text


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


# --- folder locks and leftovers (issue 12) -----------------------------------------------------
import errno  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402

from b2b.files import atomic  # noqa: E402
from b2b.files.atomic import FolderLock, FolderLocked, remove_leftovers  # noqa: E402


def test_a_full_disk_names_the_file_being_written(tmp_path):
    f = tmp_path / "samples.npy"
    write_text(f, "old")

    def fills_up(fh):
        fh.write("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as e:
        atomic_write(f, fills_up, mode="w")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(f)
    assert f.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["samples.npy"]


def test_folder_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    out = tmp_path / "new" / "run"
    a = FolderLock(out).acquire()  # creates the folder
    assert a.held and out.is_dir()
    text = (out / ".lock").read_text()
    assert text.startswith(f"pid {os.getpid()} on ") and "started 20" in text
    with pytest.raises(FolderLocked, match=rf"^--out run is in use by another process \(pid {os.getpid()} on "):
        FolderLock(out, what="--out run").acquire()
    a.release()
    assert not a.held and not (out / ".lock").exists()
    with FolderLock(out) as b:  # free again
        assert b.held
    c = FolderLock(out).acquire()
    del c  # dropped while held: released
    assert not (out / ".lock").exists()
    (out / ".lock").write_text("pid 999999 on elsewhere, started long ago: b2b train\n")  # a dead holder
    with FolderLock(out):
        assert "999999" not in (out / ".lock").read_text()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        FolderLock(f).acquire()


def test_folder_lock_can_wait_for_its_holder(tmp_path):
    first = FolderLock(tmp_path).acquire()
    told, got = threading.Event(), []

    def second():
        lock = FolderLock(tmp_path).acquire(wait=True, on_wait=lambda holder: told.set())
        got.append(lock.holder())
        lock.release()

    th = threading.Thread(target=second)
    th.start()
    assert told.wait(10)  # it said it waits, and for whom
    assert not got
    first.release()
    th.join(10)
    assert got and got[0].startswith(f"pid {os.getpid()}")


def test_remove_leftovers_only_ours_and_only_older(tmp_path):
    for name in [".ckpt.0123abcd.tmp", ".ckpt.deadbeef.tmp", "keep.txt", ".ckpt.nothex!.tmp"]:
        (tmp_path / name).write_text("x")
    (tmp_path / ".store.0badc0de.tmp").mkdir()
    (tmp_path / ".store.0badc0de.tmp" / "a").write_text("x")
    os.utime(tmp_path / ".ckpt.deadbeef.tmp", (2e9, 2e9))  # "written after the lock was taken"
    removed = remove_leftovers(tmp_path, r"\.(ckpt|store)\.[0-9a-f]{8}\.tmp", older_than=1.9e9)
    assert sorted(p.name for p in removed) == [".ckpt.0123abcd.tmp", ".store.0badc0de.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt.deadbeef.tmp", ".ckpt.nothex!.tmp", "keep.txt"]
    assert remove_leftovers(tmp_path / "missing", ".*") == []
    assert atomic.remove_leftovers(tmp_path, r"\.ckpt\.[0-9a-f]{8}\.tmp") == [tmp_path / ".ckpt.deadbeef.tmp"]


def test_free_bytes_asks_the_nearest_existing_folder(tmp_path, monkeypatch):
    import shutil

    from b2b.files.atomic import free_bytes

    asked = []
    monkeypatch.setattr(shutil, "disk_usage", lambda p: asked.append(p) or shutil._ntuple_diskusage(10, 3, 7))
    (tmp_path / "f").write_text("x")
    assert free_bytes(tmp_path / "a" / "b" / "c") == 7 and asked[-1] == tmp_path
    assert free_bytes(tmp_path / "f") == 7 and asked[-1] == tmp_path  # a file: its folder


def test_lock_optional_where_the_file_system_has_no_locks(tmp_path, monkeypatch):
    import errno

    fcntl = pytest.importorskip("fcntl")
    normal = FolderLock(tmp_path / "c").acquire()
    assert normal.exclusive
    normal.release()

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(OSError, match="No locks available"):
        FolderLock(tmp_path / "a").acquire()
    lock = FolderLock(tmp_path / "b", required=False).acquire()
    assert lock.held and not lock.exclusive and (tmp_path / "b" / ".lock").is_file()
    lock.release()
    assert not lock.held and not (tmp_path / "b" / ".lock").exists()


# --------------------------------------------------------------------------- issue 25
def test_atomic_write_refuses_a_link_or_fifo_at_the_name(tmp_path):
    target = tmp_path / "target"
    target.write_text("precious")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        with pytest.raises(OSError, match="writes only regular files") as e:
            atomic.write_text(tmp_path / name, "new")
        assert e.value.filename == str(tmp_path / name)
    assert target.read_text() == "precious" and (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link", "target"]  # no temporaries


def test_claim_output_locks_and_removes_only_its_own_leftovers(tmp_path):
    (tmp_path / ".g.pt.0123abcd.tmp").write_text("killed export of g.pt")
    (tmp_path / ".h.pt.0123abcd.tmp").write_text("h.pt's writer may be alive")
    lock = atomic.claim_output(tmp_path / "g.pt", "out g.pt", file=True)
    assert lock.held and (tmp_path / ".g.pt.lock").is_file()
    with pytest.raises(atomic.FolderLocked, match="out g.pt is in use by another process"):
        atomic.claim_output(tmp_path / "g.pt", "out g.pt", file=True)
    atomic.claim_output(tmp_path / "h.pt", "out h.pt", file=True).release()  # another file: not blocked
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # both leftovers gone (h.pt's by its own claim)
    with pytest.raises(FileNotFoundError, match="folder does not exist"):
        atomic.claim_output(tmp_path / "no" / "g.pt", "out", file=True)
    assert not (tmp_path / "no").exists()
    out = tmp_path / "folder"
    out.mkdir()
    (out / ".samples.npy.89abcdef.tmp").write_text("x")
    (out / "samples.tmp").write_text("not a temporary of atomic_path")
    atomic.claim_output(out, "--out folder").release()
    assert sorted(p.name for p in out.iterdir()) == ["samples.tmp"]


def test_folder_lock_never_writes_through_a_symlink(tmp_path):
    target = tmp_path / "target"
    target.write_text("precious")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / ".lock").symlink_to(target)
    with pytest.raises(OSError):
        atomic.FolderLock(folder).acquire()
    assert target.read_text() == "precious"
