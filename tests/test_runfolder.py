"""b2b.training.runfolder: the one path by which ``b2b train`` and the Trainer take a run folder."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from b2b.files import atomic as batomic
from b2b.training import runfolder
from b2b.training import command as bcommand
from b2b.training import trainer as btrain
from b2b.files.atomic import FolderLock, FolderLocked
from b2b.cli import main as cli_main
from b2b.training.trainer import Trainer, TrainerConfig
from b2b.model.presets import get_preset


def _cfg(out, **kw):
    return TrainerConfig(preset=get_preset("seed").with_training(batch=2, n_critic=1), iterations=1, out=str(out),
                         device="cpu", checkpoint_every=1, sample_every=0, progress=False, fast_edges=False, **kw)


def _windows(n):
    g = torch.Generator().manual_seed(n)
    return torch.rand(n, 17, 64, 72, generator=g) < 0.05


def test_claim_refuses_a_held_folder_by_class_not_by_name(tmp_path, monkeypatch):
    class HeldElsewhere(FolderLocked):  # a subclass: the refusal is recognised with isinstance
        pass

    def held(self):
        raise HeldElsewhere(errno.EWOULDBLOCK, f"{self.what} is in use by another process (pid 1 on h)")

    monkeypatch.setattr(batomic.FolderLock, "acquire", held)
    with pytest.raises(FolderLocked, match=r"^--out x is in use by another process \(pid 1 on h\); wait for it "
                                           r"to finish or choose another --out$"):
        runfolder.claim_run_folder(tmp_path, "--out x")


def test_claim_removes_only_leftovers_of_run_files_and_reports_them(tmp_path, capsys):
    ours = [tmp_path / ".checkpoint_00000002.pt.0123abcd.tmp", tmp_path / ".history.csv.89abcdef.tmp"]
    theirs = [tmp_path / ".notes.txt.0123abcd.tmp", tmp_path / "checkpoint_00000001.pt"]
    for p in ours + theirs:
        p.write_bytes(b"x")
    past = os.stat(tmp_path).st_mtime - 60
    for p in ours + theirs:
        os.utime(p, (past, past))
    lock = runfolder.claim_run_folder(tmp_path, "--out t")
    try:
        assert lock.held and not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
        assert "removed 2 temporary file(s)" in capsys.readouterr().err
        with pytest.raises(FolderLocked, match="choose another --out"):  # same process, second claim
            runfolder.claim_run_folder(tmp_path, "--out t")
    finally:
        lock.release()


def test_claim_refuses_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        runfolder.claim_run_folder(f, "--out f")


def test_newest_readable_checkpoint_moves_bad_ones_aside_only_when_it_reports(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no checkpoint_"):
        runfolder.newest_readable_checkpoint(tmp_path)
    t = Trainer(_cfg(tmp_path), _windows(4))
    t.train()
    good = t.last_checkpoint
    bad = tmp_path / "checkpoint_00000005.pt"
    bad.write_bytes(good.read_bytes()[:1000])  # truncated
    path, ckpt = runfolder.newest_readable_checkpoint(tmp_path, report=False)  # another rank: touches nothing
    assert path == good and ckpt["step"] == 1 and bad.exists()
    assert capsys.readouterr().err == ""
    path, _ = runfolder.newest_readable_checkpoint(tmp_path)
    assert path == good and not bad.exists() and (tmp_path / "checkpoint_00000005.pt.unreadable").exists()
    assert "resuming from checkpoint_00000001.pt" in capsys.readouterr().err
    good.write_bytes(b"junk")
    with pytest.raises(ValueError, match="no readable checkpoint"):
        runfolder.newest_readable_checkpoint(tmp_path)


@pytest.mark.parametrize("option, value, message", [
    ("--keep", "0", "--keep: keep must be a positive integer, got 0"),
    ("--log-every", "0", "--log-every: log_every must be a positive integer, got 0"),
    ("--sample-every", "-1", "--sample-every: sample_every must be >= 0"),
    ("--batch", "0", "--batch: batch must be a positive integer, got 0"),
])
def test_cli_options_are_checked_by_the_config_before_loading(tmp_path, monkeypatch, capsys, option, value, message):
    opened = []
    monkeypatch.setattr(bcommand, "open_dataset", lambda name, root=None: opened.append(name))
    args = ["train", "--data", "fake", "--out", str(tmp_path / "o"), "--no-progress", "--threads", "1",
            option, value]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert opened == [] and not (tmp_path / "o").exists()
