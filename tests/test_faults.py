"""Issue 35, the third fault sweep: nothing lost on a second run, nothing hangs, no metadata outside
the seal, every declared size bounded, every JSON field type-checked, streams and signals as a shell
gives them. Interruptions are simulated deterministically (a writer that raises halfway); a real
process is killed only where nothing else shows the behaviour (workers outliving their parent)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b.datasets import bach, fetch, lpd, store
from b2b.files import atomic
from b2b.evaluation import evaluate as E
from b2b.sampling import generate as G
from b2b.files.atomic import FolderLock, NotARegularFile, open_regular, publish, read_json
from b2b.model.checkpoint import load_checkpoint, load_generator, tensor_digest
from b2b.cli import main as cli_main
from b2b.music.data import DataError, asset
from conftest import triads
from lpd_fixtures import src  # noqa: F401 - the LPD-17 downloads, built once
from b2b.model.networks import check_memory
from b2b.model.presets import BOUNDS, CriticConfig, GeneratorConfig, Preset, TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "data" / "pretrained" / "generator.pt"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes); hidden names included."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- 1. a rerun loses nothing
class _Figure:
    """A stand-in for a matplotlib figure (drawing the real ones takes seconds on a busy machine)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def savefig(self, f, format):  # noqa: A002 - matplotlib's name
        f.write(f"figure {self.name}".encode())


@pytest.fixture
def evaluation(tmp_path, capsys, monkeypatch):
    """An earlier complete evaluation with figures, and the argv that made it."""
    monkeypatch.setattr(E, "plot_distributions", lambda report, m: _Figure(m))
    monkeypatch.setattr(E, "plot_self_similarity", lambda *a: _Figure("self_similarity"))
    monkeypatch.setattr(E, "plot_mgeval", lambda *a: _Figure("mgeval"))
    monkeypatch.setattr(E.plt, "close", lambda fig: None)
    real = tmp_path / "real.npy"
    np.save(real, triads(4))
    out = tmp_path / "eval"
    argv = ["evaluate", "--samples", str(real), "--data", str(real), "--n", "4", "--no-two-sample", "--out", str(out)]
    assert cli_main(argv) == 0
    capsys.readouterr()
    before = snapshot(out)
    assert "report.md" in before and any(k.startswith("figures/") for k in before)
    return argv, out, before


@pytest.mark.parametrize("fault", ["disk full", "ctrl-c"])
def test_evaluate_rerun_that_fails_halfway_keeps_the_earlier_report(evaluation, monkeypatch, capsys, fault):
    argv, out, before = evaluation
    real_save, calls = E._save, []

    def halfway(fig, path):  # the third figure of the rerun fails
        calls.append(path)
        if len(calls) == 3:
            if fault == "ctrl-c":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(fig, path)

    monkeypatch.setattr(E, "_save", halfway)
    assert cli_main(argv) == (130 if fault == "ctrl-c" else 2)
    err = one_line(capsys)
    assert ("interrupted" if fault == "ctrl-c" else "No space left on device") in err
    assert snapshot(out) == before  # byte for byte: no temporaries, no lock, nothing mixed


def test_evaluate_rerun_replaces_the_whole_set(evaluation, capsys):
    argv, out, before = evaluation
    assert cli_main([*argv, "--no-figures"]) == 0
    after = snapshot(out)
    assert not any(k.startswith("figures/") and k.endswith(".png") for k in after)  # no figures of the old set
    assert set(after) == {"report.md", "report.csv", "mgeval.json", "features_real.npz", "features_generated.npz"}


@pytest.fixture
def batch(tmp_path, capsys):
    """An earlier batch of 10 samples from the shipped generator, without WAVs."""
    out = tmp_path / "s"
    assert cli_main(["generate", "--checkpoint", str(PRETRAINED), "--n", "10", "--no-wav", "--out", str(out),
                     "--device", "cpu"]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("stale", ["folder", "immutable"])
def test_generate_never_mixes_batches_when_a_stale_file_cannot_go(batch, monkeypatch, capsys, stale):
    if stale == "folder":
        (batch / "sample_007.mid").unlink()
        (batch / "sample_007.mid").mkdir()
    else:  # chattr +i: the kernel refuses to rename or remove it (EPERM), even for root
        real_rename = atomic.os.rename

        def immutable(src, dst, *a, **k):
            if Path(src).name == "sample_007.mid" and Path(src).parent == batch:
                raise PermissionError(errno.EPERM, "Operation not permitted", str(src))
            return real_rename(src, dst, *a, **k)

        monkeypatch.setattr(atomic.os, "rename", immutable)
    before = snapshot(batch)
    assert cli_main(["generate", "--checkpoint", str(PRETRAINED), "--n", "4", "--seed", "1", "--no-wav",
                     "--out", str(batch), "--device", "cpu"]) == 2
    err = one_line(capsys)
    assert "sample_007.mid" in err and "earlier files are untouched" in err
    assert snapshot(batch) == before and (batch / "samples.json").is_file()
    assert sorted(p.name for p in batch.iterdir() if p.name.startswith(".")) == []


def test_generate_rerun_interrupted_while_publishing_keeps_the_earlier_batch(batch, monkeypatch, capsys):
    before = snapshot(batch)
    real_rename, moved = atomic.os.rename, []

    def ctrl_c(src, dst, *a, **k):  # Ctrl-C after four renames of the swap
        moved.append(src)
        if len(moved) == 5:
            raise KeyboardInterrupt
        return real_rename(src, dst, *a, **k)

    monkeypatch.setattr(atomic.os, "rename", ctrl_c)
    assert cli_main(["generate", "--checkpoint", str(PRETRAINED), "--n", "12", "--seed", "1", "--no-wav",
                     "--out", str(batch), "--device", "cpu"]) == 130
    assert snapshot(batch) == before


def test_publish_undoes_every_move_on_failure(tmp_path):
    out, stage = tmp_path / "out", tmp_path / "stage"
    (out / "figures").mkdir(parents=True)
    stage.mkdir()
    for name, text in (("a", "old a"), ("b", "old b"), ("figures/f", "old f"), ("stale", "old stale")):
        (out / name).write_text(text)
    (stage / "a").write_text("new a")
    before = snapshot(out)
    with pytest.raises(FileNotFoundError):  # "b" was never staged: the swap fails at its second file
        publish(stage, out, ["a", "b"], remove=["stale"])
    assert snapshot(out) == before and (stage / "a").read_text() == "new a"
    (stage / "b").write_text("new b")
    (stage / "figures").mkdir()
    (stage / "figures" / "g").write_text("new g")
    publish(stage, out, ["a", "b", "figures/g"], remove=["stale", "figures/f"])
    assert snapshot(out) == {"a": b"new a", "b": b"new b", "figures/g": b"new g"}


def test_export_refuses_an_out_that_is_its_checkpoint(checkpoint, tmp_path, capsys):
    ckpt = tmp_path / "checkpoint_00000001.pt"
    shutil.copy(checkpoint, ckpt)
    os.link(ckpt, tmp_path / "alias.pt")
    before = ckpt.read_bytes()
    for out in (ckpt, tmp_path / "alias.pt", tmp_path / "." / ckpt.name):
        assert cli_main(["export", "--checkpoint", str(ckpt), "--density", "0.01", "--n", "4",
                         "--out", str(out)]) == 2
        assert "also an input" in one_line(capsys)
    assert ckpt.read_bytes() == before and load_checkpoint(ckpt)["format"] == "b2b-checkpoint"


# --------------------------------------------------------------------------- 2. nothing hangs
def test_readers_refuse_a_fifo_without_opening_it_for_a_writer(tmp_path):
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"manifest.json: is a FIFO \(named pipe\), expected a regular file"):
        read_json(fifo)
    with pytest.raises(NotARegularFile):
        fetch.sha256_file(fifo)
    with pytest.raises(NotARegularFile):
        open_regular(tmp_path)  # a folder too
    with pytest.raises(ValueError, match="FIFO"):
        fetch.read_cleansed_ids(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        fetch.read_genre_list(fifo, "tagtraum/Rock")
    with pytest.raises(ValueError, match="manifest.json: is a FIFO"):
        fetch.read_manifest(tmp_path)
    assert fetch._read_part_info(fifo) == {}  # a .part.json that is a FIFO: not resumable
    os.mkfifo(tmp_path / "ids.txt.part")
    with pytest.raises(NotARegularFile, match="FIFO"):  # the download never opens it to append
        fetch.download("http://127.0.0.1:9/ids", tmp_path / "ids.txt", kind="ids", progress=False)


@pytest.mark.parametrize("name", ["manifest.json", "lpd17-raw/cleansed_ids.txt", "lpd17-raw/labels.tar.gz",
                                  "lpd17-raw/lpd_17_cleansed.tar.gz", "lpd17-raw/cleansed_ids.txt.part.json"])
def test_data_lpd17_with_a_fifo_in_its_root_ends_with_one_line(tmp_path, src, name):
    root = tmp_path / "data"
    (root / "lpd17-raw").mkdir(parents=True)
    for fname, data in src["bytes"].items():  # the other downloads are in place, complete
        if not name.startswith("lpd17-raw/cleansed_ids.txt") or fname != "cleansed_ids.txt":
            (root / "lpd17-raw" / fname).write_bytes(data)
    (root / name).unlink(missing_ok=True)
    os.mkfifo(root / name)
    if name.endswith(".part.json"):
        (root / "lpd17-raw" / "cleansed_ids.txt.part").write_bytes(b"x")
    dead = "http://127.0.0.1:9/"  # nothing listens: a download fails at once
    argv = [sys.executable, "-m", "b2b", "data", "lpd17", "--root", str(root), "--no-progress",
            "--ids-url", dead + "ids", "--labels-url", dead + "labels", "--archive-url", dead + "archive"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    if not name.endswith(".part.json"):  # a FIFO .part.json is only not resumable: the download is tried
        assert "FIFO" in last and Path(name).name in last, last


# --------------------------------------------------------------------------- 3. no orphan holds a lock
def test_a_forked_child_never_holds_its_parents_lock(tmp_path):
    lock = FolderLock(tmp_path, what="t").acquire()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child waits until told, holding whatever it inherited
        try:
            os.close(w)
            os.read(r, 1)
        finally:
            os._exit(0 if lock._file is None else 1)
    try:
        os.close(r)
        lock.release()  # the parent lets go while the child lives
        again = FolderLock(tmp_path, what="t").acquire()  # free: the child holds no copy
        again.release()
    finally:
        os.write(w, b"x")
        os.close(w)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_a_killed_parent(tmp_path):
    script = textwrap.dedent(f"""
        import concurrent.futures, multiprocessing, os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from b2b.files.atomic import FolderLock, die_with_parent
        lock = FolderLock({str(tmp_path)!r}, what="t").acquire()
        pool = concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context("fork"), initializer=die_with_parent, initargs=(os.getpid(),))
        for _ in range(2):
            pool.submit(time.sleep, 60)
        for _ in range(200):  # bounded: the workers start at the first submissions
            if len(pool._processes) == 2:
                break
            time.sleep(0.05)
        print(" ".join(map(str, pool._processes)), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2
    finally:
        proc.kill()  # kill -9: no finally, no atexit in the parent
        proc.wait(timeout=20)
    for pid in workers:
        for _ in range(100):  # bounded: 10 s at most
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init counts as gone
                if f.read().split(")")[-1].split()[0] == "Z":
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"worker {pid} outlived its killed parent")
    lock = FolderLock(tmp_path, what="t").acquire()  # free again at once
    lock.release()


# --------------------------------------------------------------------------- 4. the seal covers every entry
@pytest.mark.parametrize("change", ["threshold", "calibration", "step", "preset name", "data", "weights"])
def test_an_edited_entry_of_a_sealed_file_is_refused(tmp_path, capsys, change):
    raw = torch.load(PRETRAINED, weights_only=True)
    assert raw["seal"] == 2 and raw["digest"] == tensor_digest(raw)
    if change == "threshold":
        raw["threshold"] = 0.00198
    elif change == "calibration":
        raw["calibration"]["density_target"] = 0.5
    elif change == "step":
        raw["step"] = 3000
    elif change == "preset name":
        raw["preset"]["name"] = "seed"
    elif change == "data":
        raw["data"] = {**raw.get("data", {}), "fingerprint": "sha256:" + "0" * 64}
    else:
        raw["weights"] = "ema"
    bad = tmp_path / "edited.pt"
    torch.save(raw, bad)  # the digest kept as it was
    with pytest.raises(ValueError, match="edited.pt is damaged: its contents"):
        load_checkpoint(bad)
    assert cli_main(["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "s"), "--n", "1"]) == 2
    assert "damaged" in one_line(capsys) and not (tmp_path / "s").exists()


@pytest.mark.parametrize("path", [PRETRAINED, *sorted((ROOT / "data" / "ablations").glob("*/generator.pt"))],
                         ids=lambda p: p.parent.name)
def test_shipped_generators_are_sealed_and_a_flipped_weight_byte_is_refused(tmp_path, path):
    raw = torch.load(path, weights_only=True)
    assert raw["seal"] == 2 and raw["digest"] == tensor_digest(raw)
    data = bytearray(path.read_bytes())
    w = next(v for k, v in raw["generator"].items() if v.numel() >= 64 and v.is_floating_point())
    at = bytes(data).find(w.numpy().tobytes()[:64])
    assert at > 0
    data[at + 7] ^= 0x01  # one bit of one weight
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="flipped.pt is damaged"):
        load_checkpoint(bad)


def test_a_digest_of_the_tensors_only_loads_with_a_note(tmp_path, capsys):
    raw = torch.load(PRETRAINED, weights_only=True)
    old = {k: v for k, v in raw.items() if k not in ("seal", "digest")}
    old["digest"] = tensor_digest(old)  # as written from 2026-12-03 to 12-06
    torch.save(old, tmp_path / "old.pt")
    _, info = load_generator(tmp_path / "old.pt")
    assert info["threshold"] == raw["threshold"]
    assert "digest covers the tensors only" in one_line(capsys)


def test_the_seal_covers_the_moving_average_and_the_weights_marker(checkpoint, tmp_path):
    raw = torch.load(checkpoint, weights_only=True)
    assert raw["seal"] == 2
    ema = {k: v.clone() for k, v in raw["generator"].items()}
    with_ema = {**{k: v for k, v in raw.items() if k != "digest"}, "generator_ema": ema}
    d = tensor_digest(with_ema)
    ema[next(iter(ema))].view(-1)[0] += 1.0
    assert tensor_digest(with_ema) != d
    assert tensor_digest({**with_ema, "weights": "ema"}) != tensor_digest({**with_ema, "weights": "trained"})


# --------------------------------------------------------------------------- 5. every size bounded
@pytest.mark.parametrize("net,field,value,bound", [("generator", "refiner", 1_000_000, 16),
                                                   ("critic", "streams", 10**9, 256),
                                                   ("generator", "latent", 10**12, 4096)])
def test_huge_preset_sizes_are_one_line_naming_the_field_and_its_bound(tmp_path, capsys, net, field, value, bound):
    raw = torch.load(PRETRAINED, weights_only=True)
    raw["preset"][net][field] = value
    del raw["seal"], raw["digest"]  # an unsealed file (a sealed one would be refused as damaged)
    bad = tmp_path / "huge.pt"
    torch.save(raw, bad)
    assert cli_main(["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "s"), "--n", "1"]) == 2
    err = one_line(capsys)
    assert f"{net} {field}" in err and str(bound) in err


def test_training_fields_are_bounded():
    for field, value in (("n_critic", 10**6), ("lr_step_epochs", 10**9), ("lr_g", 5.0), ("lr_gamma", 2.0),
                         ("lambda_gp", 1e9)):
        with pytest.raises(ValueError, match=field):
            TrainingConfig(**{field: value})
    with pytest.raises(ValueError, match="betas"):
        TrainingConfig(betas=(0.5, 1.5))
    assert BOUNDS["refiner"] == 16 and GeneratorConfig(refiner=16).refiner == 16
    with pytest.raises(ValueError, match="critic channels must be an integer in \\[1, 1024\\]"):
        CriticConfig(channels=1025)


def test_memory_estimate_before_build():
    # the first layer alone, ConvTranspose2d(8 -> 4, k=(2, 1)), has 8 * 4 * 2 = 64 weights: 256 bytes > 128
    p = Preset("tiny", generator=GeneratorConfig(latent=8, channels=4), critic=CriticConfig(channels=4))
    with pytest.raises(ValueError, match=r"preset 'tiny': its networks' parameters would take [\d,]+ bytes, more "
                                         r"than the 128-byte bound \(networks.MAX_PARAMETER_BYTES\)"):
        check_memory(p, limit=128)
    check_memory(p)  # within the default bound


# --------------------------------------------------------------------------- 6. JSON fields type-checked
@pytest.fixture
def bach_store(tmp_path):
    path = tmp_path / "bach"
    shutil.copytree(asset("bach/meta.json").parent, path)
    return path


@pytest.mark.parametrize("field,value,says", [
    ("build", "fast", "'build' is a string, expected an object"),
    ("window_rule", 3, "'window_rule' is an integer, expected an object"),
    ("skipped", ["bwv1.6"], "'skipped' is an array, expected an object"),
    ("pieces", "all", "'pieces' is a string, expected an object"),
    ("build.seconds", "12.5", "'build.seconds' is a string"),
])
def test_wrong_typed_store_meta_is_one_line(bach_store, tmp_path, capsys, field, value, says):
    meta = json.loads((bach_store / "meta.json").read_text())
    if field == "build.seconds":
        meta["build"]["seconds"] = value
        says = "build.'seconds' is a string, expected an integer or a number"
    else:
        meta[field] = value
    (bach_store / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="meta.json: " + says.replace("(", r"\(").replace(")", r"\)")):
        store.WindowDataset(bach_store)
    assert cli_main(["train", "--data", str(bach_store), "--iterations", "1", "--device", "cpu",
                     "--out", str(tmp_path / "run")]) == 2
    assert "meta.json" in one_line(capsys)


def test_a_null_downloads_section_reads_as_none(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"lpd17": {"format": 1, "downloads": None, "store": None}}))
    section = fetch.read_manifest(tmp_path)
    assert section == {"format": 1}
    urls = {k: f"http://x/{k}" for k in fetch.FILENAMES}
    assert lpd._sources_unchanged(section, urls) is True
    assert lpd._store_up_to_date(tmp_path, section, {}, {}) is False


@pytest.mark.parametrize("entry,says", [({"sha256": 5}, "lpd17.downloads.ids.'sha256' is an integer, expected a string"),
                                        ({"url": ["x"]}, "lpd17.downloads.ids.'url' is an array, expected a string")])
def test_wrong_typed_download_entries_are_one_line(tmp_path, entry, says):
    (tmp_path / "manifest.json").write_text(json.dumps({"lpd17": {"format": 1, "downloads": {"ids": entry}}}))
    with pytest.raises(ValueError, match=says.replace("[", "\\[").replace(".", "\\.")):
        fetch.read_manifest(tmp_path)


def test_python_m_b2b_cli_from_the_folder_that_holds_a_clone_named_b2b(tmp_path):
    (tmp_path / "b2b").symlink_to(ROOT)  # the clone, seen as a namespace package from its parent
    code = textwrap.dedent(f"""
        import runpy, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import b2b  # the namespace package of the clone's folder, as python -m finds it first
        assert getattr(b2b, "__file__", None) is None
        sys.path.append({str(ROOT)!r})  # the install, found after it (an editable install's finder)
        sys.argv = ["b2b.cli", "--version"]
        runpy.run_path({str(ROOT / "b2b" / "cli.py")!r}, run_name="__main__")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("b2b "), run.stderr


# --------------------------------------------------------------------------- 7. the terminal's oddities
def test_undecodable_bytes_in_a_path_argument(tmp_path, capsys, monkeypatch):
    out = os.fsdecode(bytes(tmp_path) + b"/out\xff")  # as Python gives argv: surrogateescape
    monkeypatch.setattr(sys, "argv", ["b2b", "generate", "--out", out])
    assert cli_main(["generate", "--checkpoint", str(PRETRAINED), "--n", "1", "--no-wav", "--out", out,
                     "--device", "cpu"]) == 0
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/out\xff"))
    assert (folder / "samples.json").is_file() and not (folder / ".lock").exists()
    assert json.loads((folder / "samples.json").read_bytes().decode("utf-8", "surrogateescape"))["n"] == 1
    assert "\\udcff" in capsys.readouterr().out  # printed, escaped


def test_closed_stderr_and_stdout(tmp_path, monkeypatch):
    shutil.copytree(asset("bach/meta.json").parent, tmp_path / "bach")
    monkeypatch.setattr(sys, "stderr", None)  # 2>&-
    monkeypatch.setattr(sys, "stdout", None)  # >&-
    assert cli_main(["data", "bach", "--root", str(tmp_path)]) == 0


def test_stdout_a_broken_pipe(tmp_path, monkeypatch):
    class Gone:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Gone())
    out = tmp_path / "s"
    assert cli_main(["generate", "--checkpoint", str(PRETRAINED), "--n", "2", "--no-wav", "--out", str(out),
                     "--device", "cpu"]) == 141
    assert read_json(out / "samples.json")["n"] == 2 and not (out / ".lock").exists()


def test_sigterm_during_train_is_one_line_releases_the_lock_and_resumes(tmp_path, capsys, monkeypatch):
    from b2b.training.trainer import Trainer

    data = tmp_path / "d"
    store.write_store(data, [("a", np.pad(triads(1)[0], ((0, 0), (0, 0), (0, 0))))], {})
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--iterations", "3", "--batch", "2", "--checkpoint-every", "1",
            "--sample-every", "0", "--out", str(out), "--device", "cpu", "--no-progress", "--threads", "1"]
    real_step = Trainer.train_step

    def term_at_step_2(self):
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", term_at_step_2)
    assert cli_main(argv) == 143
    err = capsys.readouterr().err
    assert "terminated (SIGTERM)" in err and "--resume" in err and "Traceback" not in err
    assert not (out / ".lock").exists() and (out / "checkpoint_00000002.pt").is_file()
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert cli_main([*argv, "--resume"]) == 0 and (out / "checkpoint_00000003.pt").is_file()
    assert signal.getsignal(signal.SIGTERM) is not None  # the handler before main() is back
