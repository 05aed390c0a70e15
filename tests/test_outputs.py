"""Issue 25 across commands: outputs only as regular files, leftovers cleaned, checkpoints that
verify themselves, options refused with one line naming them (export, evaluate, generate, train)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import torch

from b2b.model import checkpoint as bckpt
from b2b.files.atomic import check_output, read_json
from b2b.model.checkpoint import load_checkpoint, load_generator, tensor_digest
from b2b.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "data" / "pretrained" / "generator.pt"


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def make(kind: str, path: Path, target: Path) -> None:
    """Put a symlink (to ``target``), FIFO, character device or folder at ``path``."""
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a second /dev/null
        except PermissionError:
            pytest.skip("creating a device node needs root")
    else:
        path.mkdir()


# --------------------------------------------------------------------------- 1. regular files only
@pytest.mark.parametrize("kind", ["symlink", "fifo", "device", "folder"])
def test_check_output_refuses_everything_but_a_regular_file(tmp_path, kind):
    target = tmp_path / "target"
    target.write_text("precious")
    make(kind, tmp_path / "x", target)
    with pytest.raises(OSError, match="b2b writes only regular files") as e:
        check_output(tmp_path / "x")
    assert e.value.filename == str(tmp_path / "x")
    (tmp_path / "free").unlink(missing_ok=True)
    assert check_output(tmp_path / "free") == tmp_path / "free"  # free and regular names pass
    assert check_output(target) == target


@pytest.mark.parametrize("fmt", ["pt", "onnx"])
@pytest.mark.parametrize("kind", ["symlink", "fifo", "device"])
def test_export_never_replaces_a_link_device_or_fifo(checkpoint, tmp_path, capsys, kind, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    target = tmp_path / "target.txt"
    target.write_text("precious")
    out = tmp_path / f"g.{fmt}"
    make(kind, out, target)
    before = os.lstat(out)
    extra = ["--density", "0.01", "--n", "4"] if fmt == "pt" else ["--format", "onnx"]
    source = checkpoint if fmt == "pt" else PRETRAINED
    assert cli_main(["export", "--checkpoint", str(source), "--out", str(out), *extra]) == 2
    err = one_line(capsys)
    assert str(out) in err and "regular files" in err
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino) and target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, "target.txt"])


def test_evaluate_never_writes_through_a_link(checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    target = tmp_path / "elsewhere.md"
    target.write_text("precious")
    (out / "report.csv").symlink_to(target)
    rc = cli_main(["evaluate", "--checkpoint", str(checkpoint), "--data", "bach", "--n", "4", "--out", str(out),
                   "--no-figures"])
    err = one_line(capsys)
    assert rc == 2 and "report.csv" in err and "regular files" in err
    assert target.read_text() == "precious" and (out / "report.csv").is_symlink()


# --------------------------------------------------------------------------- 3. leftovers
def test_export_removes_its_own_leftovers_only(checkpoint, tmp_path, capsys):
    out = tmp_path / "g.pt"
    mine = tmp_path / ".g.pt.0123abcd.tmp"  # what a killed export of g.pt left
    other = tmp_path / ".h.pt.0123abcd.tmp"  # another file's writer may still be running
    mine.write_bytes(b"half")
    other.write_bytes(b"half")
    assert cli_main(["export", "--checkpoint", str(checkpoint), "--density", "0.01", "--n", "4",
                     "--out", str(out)]) == 0
    assert not mine.exists() and other.exists() and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "g.pt"]  # no lock file left


def test_evaluate_removes_leftovers(checkpoint, tmp_path, capsys, monkeypatch):
    import functools

    import b2b.evaluation.report as R

    # the report as a whole, figures included; its two-sample test in 20 steps, not 300 (not what is tested)
    monkeypatch.setattr(R, "classifier_two_sample_test", functools.partial(R.classifier_two_sample_test, steps=20))
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / ".report.csv.0123abcd.tmp").write_text("half")
    (out / "figures" / ".mgeval.png.89abcdef.tmp").write_bytes(b"half")
    (out / ".notes.txt.0123abcd.tmp").write_text("another writer's temporary")
    assert cli_main(["evaluate", "--checkpoint", str(checkpoint), "--data", "bach", "--n", "4",
                     "--out", str(out)]) == 0
    left = [p.name for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == ".lock"]
    assert left == [".notes.txt.0123abcd.tmp"] and (out / "report.md").is_file()


# --------------------------------------------------------------------------- 5. digests
def test_checkpoints_carry_a_digest_that_loading_verifies(checkpoint, tmp_path, capsys):
    raw = torch.load(checkpoint, weights_only=True)
    assert raw["digest"] == tensor_digest(raw) and raw["digest"].startswith("sha256:")
    # an independent check of what the digest covers: change one value of one tensor
    changed = dict(raw, generator=dict(raw["generator"]))
    w = changed["generator"]["layers.edge.weight"].clone()
    w.view(-1)[w.numel() // 2] += 1.0
    changed["generator"]["layers.edge.weight"] = w
    assert tensor_digest(changed) != raw["digest"]
    # 200 bytes flipped in the middle of layers.edge.weight's data inside the archive
    data = bytearray(checkpoint.read_bytes())
    edge = raw["generator"]["layers.edge.weight"].numpy().tobytes()
    at = bytes(data).find(edge[:64])
    assert at > 0
    middle = at + len(edge) // 2
    data[middle:middle + 200] = bytes(b ^ 0xFF for b in data[middle:middle + 200])
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="flipped.pt is damaged"):
        load_checkpoint(bad)
    assert cli_main(["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "s"), "--n", "2"]) == 2
    assert "damaged" in one_line(capsys) and not (tmp_path / "s").exists()


def test_files_without_a_digest_load_exactly_as_before(tmp_path, capsys):
    for i, path in enumerate((PRETRAINED, ROOT / "data" / "ablations" / "collapsed" / "generator.pt")):
        raw = torch.load(path, weights_only=True)
        old = {k: v for k, v in raw.items() if k not in ("digest", "seal")}  # as written before 2026-12-03
        torch.save(old, tmp_path / f"old{i}.pt")
        g, _ = load_generator(tmp_path / f"old{i}.pt")
        for k, v in g.state_dict().items():
            assert torch.equal(v, raw["generator"][k]), k
        assert "carries no digest" in one_line(capsys)  # one note


def test_export_writes_a_digest(checkpoint, tmp_path):
    out = tmp_path / "g.pt"
    assert cli_main(["export", "--checkpoint", str(checkpoint), "--density", "0.01", "--n", "4",
                     "--out", str(out)]) == 0
    raw = torch.load(out, weights_only=True)
    assert raw["digest"] == tensor_digest(raw)


# --------------------------------------------------------------------------- 6. absurd presets
@pytest.mark.parametrize("field,value", [("channels", 200000), ("latent", 10**12)])
def test_absurd_preset_sizes_are_refused_before_allocation(tmp_path, capsys, monkeypatch, field, value):
    raw = torch.load(PRETRAINED, weights_only=True)
    raw["preset"]["generator"][field] = value
    del raw["digest"], raw["seal"]  # a file of before the seal (a sealed one is refused as damaged)
    bad = tmp_path / "absurd.pt"
    torch.save(raw, bad)
    built = []
    real = bckpt.GenConvNet

    def spy(*a, **k):  # where the generator is built: only on the meta device for such a file
        built.append(torch.empty(0).device.type)
        return real(*a, **k)

    monkeypatch.setattr(bckpt, "GenConvNet", spy)
    bound = {"channels": 1024, "latent": 4096}[field]
    with pytest.raises(ValueError, match=rf"absurd.pt is malformed: .*generator {field} must be an integer in "
                                         rf"\[1, {bound}\]"):
        load_generator(bad)
    assert built == []  # refused from the preset's fields, before any network is built
    for argv in (["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "s")],
                 ["export", "--checkpoint", str(bad), "--format", "onnx", "--out", str(tmp_path / "g.onnx")]):
        assert cli_main(argv) == 2
        assert f"generator {field} must be an integer in [1, {bound}]" in one_line(capsys)


# --------------------------------------------------------------------------- 11. one line naming the option
@pytest.mark.parametrize("device", ["mps", "meta", "xla", "cuda:99", "nonsense"])
def test_unusable_devices_are_one_line_naming_device(checkpoint, tmp_path, capsys, device):
    if device.startswith("cuda") and not torch.cuda.is_available():
        device = "cuda"
    commands = [
        ["generate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "s")],
        ["export", "--checkpoint", str(checkpoint), "--density", "0.01", "--out", str(tmp_path / "g.pt")],
        ["evaluate", "--checkpoint", str(checkpoint), "--data", "bach", "--out", str(tmp_path / "e")],
        ["train", "--data", "bach", "--iterations", "1", "--out", str(tmp_path / "t")],
    ]
    for argv in commands:
        assert cli_main([*argv, "--device", device]) == 2, argv
        err = one_line(capsys)
        assert "--device" in err and device.split(":")[0] in err, err
    assert not list(tmp_path.iterdir())  # nothing was written


def test_checkpoint_that_is_not_a_readable_file(checkpoint, tmp_path, capsys, monkeypatch):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    expected = {"folder": "is a folder", "fifo": "is a FIFO", "loop": "symbolic link loop",
                "dangling": "symbolic link to a file that does not exist", "missing": "does not exist"}
    for name, message in expected.items():
        assert cli_main(["generate", "--checkpoint", str(tmp_path / name), "--out", str(tmp_path / "s")]) == 2
        err = one_line(capsys)
        assert str(tmp_path / name) in err and message in err, err
    # unreadable (mode 000; root reads anyway, so the refusal is simulated)
    locked = tmp_path / "locked.pt"
    locked.write_bytes(checkpoint.read_bytes())
    locked.chmod(0)
    real_open = open

    def denied(path, *a, **k):
        if str(path) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", denied)
    assert cli_main(["generate", "--checkpoint", str(locked), "--out", str(tmp_path / "s")]) == 2
    err = one_line(capsys)
    assert "locked.pt cannot be read (Permission denied" in err and "empty" not in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("seed", [str(2**64), "-1", str(2**32)])
def test_seed_is_checked_alike_in_every_command(checkpoint, tmp_path, capsys, seed):
    commands = [
        ["generate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "s")],
        ["export", "--checkpoint", str(checkpoint), "--density", "0.01", "--out", str(tmp_path / "g.pt")],
        ["evaluate", "--checkpoint", str(checkpoint), "--data", "bach", "--out", str(tmp_path / "e")],
        ["train", "--data", "bach", "--iterations", "1", "--out", str(tmp_path / "t")],
        ["data", "lpd17", "--root", str(tmp_path / "r")],
    ]
    lines = set()
    for argv in commands:
        assert cli_main([*argv, "--seed", seed]) == 2, argv
        err = one_line(capsys)
        lines.add(err.split("error: ", 1)[1])
    assert lines == {f"--seed must be an integer in [0, 4294967295] (2**32 - 1), got {seed}\n"}
    assert not list(tmp_path.iterdir())


def test_largest_seed_is_accepted(checkpoint, tmp_path):
    assert cli_main(["generate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "s"), "--n", "1",
                     "--no-wav", "--seed", str(2**32 - 1)]) == 0


# --------------------------------------------------------------------------- 4. JSON read
def test_read_json_bounds_depth_size_and_type(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep.json: JSON nested 100000 levels deep"):
        read_json(deep, list)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('[1]')
    with pytest.raises(ValueError, match=r"wrong.json: holds an array, expected an object"):
        read_json(wrong)
    big = tmp_path / "big.json"
    big.write_text('{"a": "' + "x" * 2000 + '"}')
    with pytest.raises(ValueError, match="larger than 1,000 bytes"):
        read_json(big, max_bytes=1000)
    ok = tmp_path / "ok.json"
    ok.write_text('{"a": "[[[[", "b": [1, {"c": null}]}')  # brackets inside strings do not count
    assert read_json(ok, max_depth=3) == {"a": "[[[[", "b": [1, {"c": None}]}
    with pytest.raises(ValueError, match="nested 3 levels"):
        read_json(ok, max_depth=2)


def test_a_second_evaluate_is_refused_before_any_work(checkpoint, tmp_path, capsys, monkeypatch):
    from b2b.evaluation import evaluate as bevaluate
    from b2b.files.atomic import FolderLock

    out = tmp_path / "report"
    opened = []
    monkeypatch.setattr(bevaluate, "open_generator", lambda *a, **k: opened.append(a))
    with FolderLock(out, what="a running evaluate"):
        rc = cli_main(["evaluate", "--checkpoint", str(checkpoint), "--data", "bach", "--n", "4", "--out", str(out)])
        err = one_line(capsys)
    assert rc == 2 and "in use by another process" in err and opened == []
    monkeypatch.undo()
    assert cli_main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--data", "bach", "--out",
                     str(tmp_path / "new")]) == 2
    assert "none.pt" in one_line(capsys) and not (tmp_path / "new").exists()


def test_train_never_writes_through_a_link_in_its_out_folder(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    target = tmp_path / "elsewhere.csv"
    target.write_text("precious")
    (out / "history.csv").symlink_to(target)
    rc = cli_main(["train", "--data", "bach", "--iterations", "1", "--batch", "2", "--out", str(out), "--threads", "1",
                   "--no-progress", "--sample-every", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "history.csv" in err and "regular files" in err and "Traceback" not in err, err
    assert err.strip().count("\n") == 0
    assert target.read_text() == "precious" and (out / "history.csv").is_symlink()
