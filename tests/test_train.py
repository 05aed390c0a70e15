"""Tests for b2b.training.trainer: steps, resume, NaN guard, checkpoints, precision, DDP, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b.training import command as bcommand
from b2b.training import trainer as btrain
from b2b.cli import main as cli_main
from b2b.gan.losses import critic_loss
from b2b.model.networks import DiscConvNet
from b2b.model.presets import CriticConfig, TrainingConfig, get_preset
from b2b.model import checkpoint as bckpt
from b2b.model.checkpoint import load_generator
from b2b.sampling.export import export_generator
from b2b.model.fast import speed_up
from b2b.training.history import HISTORY_FIELDS, TrainingDiverged
from b2b.training.trainer import Trainer, TrainerConfig


def windows(n: int = 10, seed: int = 0, density: float = 0.05) -> torch.Tensor:
    """Synthetic binary windows (n, 17, 64, 72); denser low tracks so samples are not alike."""
    g = torch.Generator().manual_seed(seed)
    dens = torch.linspace(density * 2, density / 4, 17).view(1, 17, 1, 1)
    return (torch.rand(n, 17, 64, 72, generator=g) < dens).float()


def cfg(out: Path, **kw) -> TrainerConfig:
    """A small run's config; hyper-parameters among ``kw`` (``batch=2``) change the preset's."""
    hyper = {"batch": 4, "n_critic": 2}
    hyper.update({k: kw.pop(k) for k in list(kw) if k in {f.name for f in dataclasses.fields(TrainingConfig)}})
    base = dict(iterations=2, out=str(out), progress=False, checkpoint_every=1000, sample_every=0, device="cpu",
                seed=3)
    base.update(kw)
    base["preset"] = get_preset(base.get("preset", "seed")).with_training(**hyper)
    return TrainerConfig(**base)


def params(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"G.{k}": v.detach().clone() for k, v in trainer.generator.state_dict().items()}
    out.update({f"D.{k}": v.detach().clone() for k, v in trainer.critic.state_dict().items()})
    return out


def test_one_step_changes_parameters_and_losses_are_finite(tmp_path):
    t = Trainer(cfg(tmp_path, iterations=1), windows())
    before = params(t)
    hist = t.train()
    after = params(t)
    assert len(hist) == 1 and hist[0]["step"] == 1
    for k in ["loss_d", "loss_g", "wasserstein", "penalty", "grad_norm", "lr_g", "lr_d", "time"]:
        assert math.isfinite(hist[0][k]), k
    changed = [k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert any(k.startswith("G.") for k in changed) and any(k.startswith("D.") for k in changed)
    # the generator step does not leave the critic frozen
    assert all(p.requires_grad for p in t.critic.parameters())
    assert (tmp_path / "checkpoint_00000001.pt").is_file()  # the last step is always saved


def test_data_kept_as_one_bool_tensor_and_batches_cover_an_epoch(tmp_path):
    x = windows(8)
    t = Trainer(cfg(tmp_path, batch=4), x)
    assert t.data.dtype == torch.bool and t.data.shape == (8, 17, 64, 72)
    seen = torch.cat([t._next_indices(), t._next_indices()])
    assert sorted(seen.tolist()) == list(range(8))  # one permutation = one epoch, no repeats
    b = t.next_batch()
    assert b.dtype == torch.float32 and b.shape == (4, 17, 64, 72)


def test_bad_dataset_shape(tmp_path):
    with pytest.raises(ValueError, match=r"dataset: expected windows of shape \(n, 17, 64, 72\)"):
        Trainer(cfg(tmp_path), torch.zeros(5, 17, 64, 71))
    with pytest.raises(ValueError, match="divisible|positive"):
        Trainer(cfg(tmp_path, batch=0), windows())


def test_epochs_and_step_lr(tmp_path):
    # 10 windows, batch 4, 2 critic steps: 0.8 epoch per step; StepLR every epoch x0.5.
    # Each row holds the rate its step trained with: step 1 starts at epoch 0, step 2 at 0.8 (both
    # before the first completed epoch: the initial rate), step 3 at 1.6 (one epoch done: halved).
    # The rate after step 3 (epoch 2.4: quartered) is the next step's, not step 3's.
    t = Trainer(cfg(tmp_path, iterations=3, lr_step_epochs=1, lr_gamma=0.5), windows(10))
    hist = t.train()
    assert [round(r["epoch"], 6) for r in hist] == [0.8, 1.6, 2.4]
    assert [r["lr_g"] for r in hist] == pytest.approx([3e-4, 3e-4, 1.5e-4])
    assert [r["lr_d"] for r in hist] == pytest.approx([6e-4, 6e-4, 3e-4])
    assert t.opt_g.param_groups[0]["lr"] == pytest.approx(7.5e-5)  # what a 4th step would use


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    data = windows(10)
    straight = Trainer(cfg(tmp_path / "a", iterations=6), data)
    straight.train()
    ref = params(straight)
    ref_opt = straight.opt_d.state_dict()

    first = Trainer(cfg(tmp_path / "b", iterations=3, checkpoint_every=3), data)
    first.train()
    del first
    torch.manual_seed(12345), torch.randn(100)  # disturb the global RNG: resume must restore it
    np.random.seed(1)
    resumed = Trainer(cfg(tmp_path / "b", iterations=6, checkpoint_every=3), data, resume=True)
    assert resumed.step == 3
    resumed.train()
    got = params(resumed)
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    for a, b in zip(ref_opt["state"].values(), resumed.opt_d.state_dict()["state"].values()):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)


def test_resume_under_another_name_of_the_same_preset(tmp_path):
    # a run found as an experiment (a Preset of its own name) continues under the name it got later
    data = windows(10)
    renamed = dataclasses.replace(get_preset("seed"), name="candidate", description="found in a search",
                                  threshold=0.5)  # sampling only
    Trainer(cfg(tmp_path, iterations=2, checkpoint_every=2, preset=renamed), data).train()
    # a checkpoint written before a field was added (here GeneratorConfig.binary) still resumes
    ck = torch.load(tmp_path / "checkpoint_00000002.pt", weights_only=True)
    del ck["preset"]["generator"]["binary"]
    bckpt.atomic_torch_save(ck, tmp_path / "checkpoint_00000002.pt")
    t = Trainer(cfg(tmp_path, iterations=3, checkpoint_every=3), data, resume=True)
    assert t.step == 2 and t.preset.name == "seed"
    t.train()
    assert torch.load(tmp_path / "checkpoint_00000003.pt", weights_only=True)["preset"]["name"] == "seed"


def test_resume_errors(tmp_path):
    data = windows(10)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(cfg(tmp_path), data, resume=True)
    Trainer(cfg(tmp_path, iterations=1), data).train()
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(cfg(tmp_path), data)
    with pytest.raises(ValueError, match=r"preset 'seed', this run 'improved'\): generator.binary is False there, True here"):
        Trainer(cfg(tmp_path, preset="improved"), data, resume=True)
    with pytest.raises(ValueError, match="10 windows.*9"):
        Trainer(cfg(tmp_path), windows(9), resume=True)
    with pytest.raises(ValueError, match="training.batch is 4 there, 2 here"):
        Trainer(cfg(tmp_path, batch=2), data, resume=True)
    (tmp_path / "other").mkdir()
    torch.save({"hello": 1}, tmp_path / "other" / "checkpoint_00000001.pt")
    with pytest.raises(ValueError, match="not a b2b checkpoint"):
        Trainer(cfg(tmp_path / "other"), data, resume=True)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    t = Trainer(cfg(tmp_path, iterations=2, checkpoint_every=1), windows())
    t.train()
    good = params(t)
    t.critic.layers.linear.register_forward_hook(lambda m, i, o: o * float("nan"))
    with pytest.raises(TrainingDiverged, match=r"step 3: non-finite loss.*checkpoint_00000002\.pt"):
        t.train(iterations=4)
    assert t.step == 2
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*.pt"))[-1] == "checkpoint_00000002.pt"
    ckpt = torch.load(tmp_path / "checkpoint_00000002.pt", weights_only=True)
    assert ckpt["step"] == 2 and len(ckpt["history"]) == 2
    for k, v in ckpt["generator"].items():
        assert torch.equal(v, good[f"G.{k}"])
    assert len(json.loads((tmp_path / "history.json").read_text())) == 2


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    t = Trainer(cfg(tmp_path, iterations=1), windows())
    t.train()
    before = (tmp_path / "checkpoint_00000001.pt").read_bytes()
    t.step = 2
    real_save = torch.save

    def failing_save(obj, f, *a, **kw):
        real_save({"partial": torch.zeros(10)}, f)
        raise OSError("disk full")

    monkeypatch.setattr(btrain.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        t.save_checkpoint()
    monkeypatch.setattr(btrain.torch, "save", real_save)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "checkpoint_00000002.pt" not in names
    assert not [n for n in names if n.endswith(".tmp")]
    assert (tmp_path / "checkpoint_00000001.pt").read_bytes() == before


def test_keep_last_k_and_history_files(tmp_path):
    t = Trainer(cfg(tmp_path, iterations=4, checkpoint_every=1, keep=2), windows())
    t.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*.pt")) == [
        "checkpoint_00000003.pt", "checkpoint_00000004.pt"]
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert list(rows[0]) == HISTORY_FIELDS
    js = json.loads((tmp_path / "history.json").read_text())
    assert [r["step"] for r in js] == [1, 2, 3, 4]
    assert float(rows[2]["loss_d"]) == pytest.approx(js[2]["loss_d"])


def test_checkpoint_loads_with_weights_only_and_load_generator(tmp_path):
    t = Trainer(cfg(tmp_path, iterations=1, preset="improved"), windows())
    t.train()
    path = tmp_path / "checkpoint_00000001.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["format"] == "b2b-checkpoint" and ckpt["step"] == 1
    for key in ["generator", "critic", "opt_g", "opt_d", "sched_g", "sched_d", "rng", "config",
                "preset", "history", "sampler", "data"]:
        assert key in ckpt, key
    assert set(ckpt["rng"][0]) == {"torch", "cuda", "batch", "numpy", "python"}
    g, info = load_generator(path)
    assert not g.training and info["step"] == 1 and info["preset"].name == "improved"
    assert info["threshold"] == get_preset("improved").threshold == 0.5 and info["latent"] == 128
    z = torch.randn(2, 128)
    t.generator.eval()
    torch.testing.assert_close(g(z), t.generator(z), rtol=0, atol=0)
    small = export_generator(path, tmp_path / "gen.pt")
    g2, info2 = load_generator(small)
    torch.testing.assert_close(g2(z), g(z), rtol=0, atol=0)
    assert small.stat().st_size < path.stat().st_size
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "missing.pt")


def test_sample_snapshots(tmp_path):
    t = Trainer(cfg(tmp_path, iterations=2, sample_every=2, n_samples=3), windows())
    t.train()
    x = np.load(tmp_path / "samples_00000002.npy")
    assert x.shape == (3, 17, 64, 72) and x.dtype == np.float16
    assert 0 <= x.min() and x.max() <= 1
    try:
        import b2b.music.plot  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "samples_00000002.png").read_bytes()[:4] == b"\x89PNG"


def test_a_sample_before_the_first_checkpoint_makes_the_run_folder(tmp_path):
    # the first sample (step 1) comes before anything else writes into a run folder that does not exist yet
    out = tmp_path / "runs" / "new"
    Trainer(cfg(out, iterations=2, sample_every=1, n_samples=2), windows()).train()
    assert sorted(p.name for p in out.glob("samples_*.npy")) == ["samples_00000001.npy", "samples_00000002.npy"]


def test_bf16_autocast_penalty_matches_fp32_on_cpu():
    torch.manual_seed(5)
    d = speed_up(DiscConvNet(CriticConfig(norm="layer", dropout=0.0)))  # as the Trainer runs it
    with torch.no_grad():  # attention switched on
        d.layers.attention.gamma.fill_(0.5)
    real = (torch.rand(8, 17, 64, 72) > 0.9).float()
    fake = torch.rand(8, 17, 64, 72)
    eps = torch.rand(8)
    out = {}
    for mode in ("fp32", "bf16"):
        d.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            loss, stats = critic_loss(d, real, fake, lambda_gp=10.0, eps=eps)
        loss.backward()  # double backward through the autocast graph
        grad = torch.cat([p.grad.flatten() for p in d.parameters() if p.grad is not None])
        out[mode] = (stats, grad)
    s32, s16 = out["fp32"][0], out["bf16"][0]
    assert s16["penalty"].dtype == torch.float32
    assert s16["penalty"].item() == pytest.approx(s32["penalty"].item(), rel=0.05)
    assert s16["grad_norm"].item() == pytest.approx(s32["grad_norm"].item(), rel=0.02)
    g32, g16 = out["fp32"][1], out["bf16"][1]
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.98


def test_cpu_bf16_trains_with_the_fast_edges_only(tmp_path):
    """On the CPU, bf16 trains through the fast edge (a matrix product, whose bf16 gradient is the
    fp32 one up to bf16 rounding) and refuses the plain convolution edge. Whether torch's CPU bf16
    Conv2d gets this layer's input gradient right depends on the processor's kernels (a quarter
    off on one machine, right to 1e-4 on one with avx512_bf16), so the Trainer takes the path
    that is right on every CPU instead of asking the machine; nothing here measures the conv."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(17, 16, (2, 72), stride=(2, 2))
    fast = speed_up(torch.nn.Sequential(conv))[0]
    x = torch.rand(4, 17, 64, 72, requires_grad=True)
    grads = {}
    for bf in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
            (g,) = torch.autograd.grad(fast(x).float().square().sum(), x)
        grads[bf] = g.float()
    assert grads[True].norm().item() == pytest.approx(grads[False].norm().item(), rel=0.02)
    assert torch.nn.functional.cosine_similarity(grads[True].flatten(), grads[False].flatten(), dim=0) > 0.999
    with pytest.raises(ValueError, match="bf16 on the CPU needs the fast edge layers"):
        Trainer(cfg(tmp_path, iterations=1, precision="bf16", fast_edges=False), windows())
    assert Trainer(cfg(tmp_path / "fast", iterations=1, precision="bf16"), windows()).amp


def test_bf16_trainer_step_on_cpu(tmp_path):
    t = Trainer(cfg(tmp_path, iterations=1, precision="bf16"), windows())
    assert t.amp
    hist = t.train()
    assert all(math.isfinite(hist[0][k]) for k in ["loss_d", "loss_g", "penalty"])
    assert all(p.dtype == torch.float32 for p in t.generator.parameters())


def test_resolve_device(monkeypatch):
    assert bckpt.resolve_device("cpu").type == "cpu"
    for cuda in (True, False):  # both kinds of machine, on every machine
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        assert bckpt.resolve_device("auto").type == ("cuda" if cuda else "cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        bckpt.resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        bckpt.resolve_device("tpu9")


def test_the_hyper_parameters_live_on_the_preset_only():
    # one list of training hyper-parameters (TrainingConfig), on the preset; TrainerConfig holds the run
    run_fields = {f.name for f in dataclasses.fields(TrainerConfig)}
    hyper = {f.name for f in dataclasses.fields(TrainingConfig)}
    assert not run_fields & hyper and "threshold" not in hyper
    p = get_preset("seed").with_training(batch=16, lr_d=1e-5)
    assert (p.name, p.training.batch, p.training.lr_d, p.training.lr_g) == ("seed", 16, 1e-5, 3e-4)
    with pytest.raises(ValueError, match="'lr' is not a training hyper-parameter"):
        get_preset("seed").with_training(lr=1e-3)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainerConfig(preset="nope").check()
    with pytest.raises(ValueError, match="keep must be a positive integer"):
        TrainerConfig(keep=0).check()
    assert json.loads(json.dumps(TrainerConfig(preset=p).to_dict()))["preset"] == "seed"


# ----------------------------------------------------------------------------- CLI
def test_cli_errors(capsys, tmp_path, monkeypatch):
    assert cli_main(["train", "--preset", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err and "seed" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA, on every machine
    assert cli_main(["train", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_cli_trains_on_a_dataset(tmp_path, monkeypatch, capsys):
    x = windows(6)
    monkeypatch.setattr(bcommand, "open_dataset", lambda name, root=None: x)
    out = tmp_path / "run"
    args = ["train", "--data", "fake", "--iterations", "2", "--batch", "2", "--out", str(out), "--no-progress",
            "--checkpoint-every", "1", "--sample-every", "0"]
    assert cli_main(args) == 0
    assert (out / "checkpoint_00000002.pt").is_file()
    assert cli_main(args[:4] + ["3"] + args[5:] + ["--resume"]) == 0
    assert (out / "checkpoint_00000003.pt").is_file()
    monkeypatch.setattr(bcommand, "open_dataset", lambda name, root=None: torch.zeros(3, 17, 64, 70))
    assert cli_main(["train", "--data", "bad", "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "(n, 17, 64, 72)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, world: int, tmp: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        t = Trainer(cfg(Path(tmp) / "out", iterations=2, batch=4, checkpoint_every=2), windows(10))
        first = t._next_indices().clone()
        t.batch_gen.manual_seed(3)  # back to the start of the batch order
        t.perm, t.cursor = torch.randperm(10, generator=t.batch_gen), 0
        init = params(t)
        t.train()
        torch.save({"first": first, "init": init, "final": params(t), "history": t.history},
                   f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_gloo_processes_keep_identical_replicas(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # disjoint halves of the same global batch
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.cat([r0["first"], r1["first"]]), perm[:4])
    for k, v in r0["final"].items():
        if "running" in k or "num_batches" in k:
            continue  # batch-norm statistics are per rank (see b2b.training.trainer)
        assert torch.equal(v, r1["final"][k]), k
    assert any(not torch.equal(r0["init"][k], r0["final"][k]) for k in r0["init"])
    # logged statistics are averaged over the ranks
    assert [r["loss_d"] for r in r0["history"]] == [r["loss_d"] for r in r1["history"]]
    assert len(r0["history"]) == 2
    ckpt = torch.load(tmp_path / "out" / "checkpoint_00000002.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])


# ----------------------------------------------------------------------------- issue 12: faults
import errno  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from b2b.files import atomic as batomic  # noqa: E402
from b2b.training import runfolder  # noqa: E402
from b2b.files.atomic import FolderLock, FolderLocked  # noqa: E402


def _fake_data(monkeypatch, x):
    calls = []

    def fake_open(name, root=None):
        calls.append(name)
        return x

    monkeypatch.setattr(bcommand, "open_dataset", fake_open)
    return calls


def _cli(out, *extra):
    return ["train", "--data", "fake", "--iterations", "1", "--batch", "2", "--out", str(out), "--no-progress",
            "--sample-every", "0", "--threads", "1", *extra]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_the_trainer_takes_no_lock_and_never_mixes_two_runs(tmp_path):
    """The folder's lock is the command's (b2b train owns its output); the Trainer takes none, but
    a new run is refused where checkpoints are, and a resumed run continues where the first ended."""
    data = windows(6)
    with FolderLock(tmp_path):  # held by someone else: the Trainer does not look
        first = Trainer(cfg(tmp_path, iterations=1), data)
        first.train()
    assert not (tmp_path / ".lock").exists() or "pid" in (tmp_path / ".lock").read_text()
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(cfg(tmp_path, iterations=1, seed=4), data)
    again = Trainer(cfg(tmp_path, iterations=2), data, resume=True)
    assert again.step == 1
    again.train()
    assert again.last_checkpoint.name == "checkpoint_00000002.pt"


def test_train_refuses_to_mix_with_a_run_that_wrote_meanwhile(tmp_path):
    data = windows(6)
    a = Trainer(cfg(tmp_path, iterations=1), data)
    a.train()
    b = Trainer(cfg(tmp_path, iterations=2), data, resume=True)
    b.train()  # writes checkpoint 2 after a's checkpoint 1
    with pytest.raises(ValueError, match="checkpoint_00000002.pt, written by another run"):
        a.train(iterations=3)
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*.pt"))[-1] == "checkpoint_00000002.pt"


def test_lock_held_by_another_process_and_stale_after_kill(tmp_path):
    out = tmp_path / "run"
    code = ("import sys, time; from b2b.files.atomic import FolderLock; lock = FolderLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    env = dict(os.environ, PYTHONPATH=str(Path(btrain.__file__).parents[1]))
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderLocked, match=rf"pid {holder.pid} "):
            runfolder.claim_run_folder(out, "--out")  # what b2b train does first
    finally:
        holder.kill()  # SIGKILL: the kernel drops the flock, the lock file stays
        holder.wait()
    assert f"pid {holder.pid}" in (out / ".lock").read_text()
    lock = runfolder.claim_run_folder(out, "--out")  # a stale lock file does not block
    assert f"pid {os.getpid()}" in (out / ".lock").read_text()
    lock.release()


def test_cli_second_run_into_the_same_out_is_refused_before_loading(tmp_path, monkeypatch, capsys):
    calls = _fake_data(monkeypatch, windows(6))
    out = tmp_path / "run"
    with FolderLock(out):
        assert cli_main(_cli(out)) == 2
    err = _one_line_error(capsys)
    assert f"--out {out} is in use by another process (pid {os.getpid()} on " in err and "--out" in err
    assert calls == [] and not list(out.glob("checkpoint_*"))
    assert cli_main(_cli(out)) == 0  # released: the next run goes ahead
    assert (out / "checkpoint_00000001.pt").is_file() and not (out / ".lock").exists()


def test_batch_memory_is_checked_before_allocating(tmp_path, monkeypatch, capsys):
    mib = 2**20
    # 256 MiB fixed + 64 x 3.2 MiB = 460.8 MiB > 400 MiB; (400 - 256) / 3.2 = 45 samples fit
    with pytest.raises(ValueError, match=r"--batch\) 64 needs about 0\.4 GiB.*use --batch 45 or less"):
        runfolder.check_batch_memory(64, torch.device("cpu"), available=400 * mib)
    assert runfolder.check_batch_memory(45, torch.device("cpu"), available=400 * mib) == pytest.approx(
        (256 + 45 * 3.2) * mib, abs=64)
    with pytest.raises(ValueError, match="use --batch 45 or less"):
        runfolder.check_batch_memory(46, torch.device("cpu"), available=400 * mib)

    class Untouchable:
        def tensor(self, dtype=None):
            raise AssertionError("the data was loaded before the batch was checked")

    monkeypatch.setattr(runfolder, "available_memory", lambda device: 300 * mib)
    with pytest.raises(ValueError, match="--batch"):
        Trainer(cfg(tmp_path / "a", batch=64), Untouchable())
    with pytest.raises(ValueError, match=r"batch 100000 is beyond"):
        Trainer(cfg(tmp_path / "b", batch=100000), Untouchable())
    monkeypatch.undo()
    _fake_data(monkeypatch, windows(6))
    args = _cli(tmp_path / "c")
    args[args.index("--batch") + 1] = "100000"
    assert cli_main(args) == 2
    assert "--batch: batch 100000 is beyond any sensible batch size (at most 65536" in _one_line_error(capsys)
    monkeypatch.setattr(runfolder, "available_memory", lambda device: 300 * mib)
    args[args.index("--batch") + 1] = "64"
    assert cli_main(args) == 2
    assert "batch (--batch) 64 needs about" in _one_line_error(capsys)
    assert not (tmp_path / "c").exists()  # the refused run left no empty --out behind


def test_out_that_is_a_file_or_not_writable(tmp_path, monkeypatch, capsys):
    _fake_data(monkeypatch, windows(6))
    f = tmp_path / "file"
    f.write_text("x")
    assert cli_main(_cli(f)) == 2
    assert f"{f}: --out exists and is not a folder" in _one_line_error(capsys)
    with pytest.raises(NotADirectoryError, match="not a folder"):
        Trainer(cfg(f), windows(6))
    real_open = open

    def read_only(path, *a, **kw):  # what a read-only or forbidden folder answers
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(batomic, "open", read_only, raising=False)
    assert cli_main(_cli(tmp_path / "ro")) == 2
    assert f"{tmp_path / 'ro' / '.lock'}: cannot write here (Read-only file system)" in _one_line_error(capsys)


def test_out_without_permission(unprivileged, monkeypatch, capsys):
    """As a user whom permissions bind (dropped from root in a child where the tests run as root,
    as in CI): --out inside a folder without write permission is one line and exit code 2."""
    _fake_data(monkeypatch, windows(6))
    locked = unprivileged.folder / "locked"

    def check():
        locked.mkdir()
        locked.chmod(0o500)
        capsys.readouterr()
        rc = cli_main(_cli(locked / "run"))
        return rc, capsys.readouterr().err

    rc, err = unprivileged.run(check)
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{locked / 'run'}" in err and "Permission denied" in err, err
    assert not (locked / "run").exists()


def test_full_disk_while_saving_a_checkpoint(tmp_path, monkeypatch, capsys):
    _fake_data(monkeypatch, windows(6))
    out = tmp_path / "run"
    assert cli_main(_cli(out)) == 0
    before = (out / "checkpoint_00000001.pt").read_bytes()
    real_open = open

    class FillsUp:
        """A file that takes 1,000 bytes, then fails like a full disk."""

        def __init__(self, f):
            self.f, self.room = f, 1000

        def write(self, b):
            n = min(len(b), self.room)
            self.f.write(bytes(memoryview(b)[:n]))
            self.room -= n
            if n < len(b):
                raise OSError(errno.ENOSPC, "No space left on device")
            return n

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_disk_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        return FillsUp(f) if "checkpoint_" in str(path) and "w" in mode else f

    monkeypatch.setattr(batomic, "open", full_disk_open, raising=False)
    assert cli_main(_cli(out, "--resume")[:4] + ["2"] + _cli(out, "--resume")[5:]) == 2
    err = _one_line_error(capsys)
    assert f"{out / 'checkpoint_00000002.pt'}: No space left on device; step 2 was not saved" in err
    assert "checkpoint_00000001.pt" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint_00000001.pt", "history.csv", "history.json"]
    assert (out / "checkpoint_00000001.pt").read_bytes() == before
    monkeypatch.setattr(batomic, "open", real_open, raising=False)
    assert cli_main(_cli(out, "--resume")[:4] + ["2"] + _cli(out, "--resume")[5:]) == 0  # room again


def _gen_dict(**over):
    from b2b.model.networks import GenConvNet
    from b2b.model.presets import get_preset

    preset = get_preset("seed")
    d = {"format": "b2b-generator", "version": 1, "step": 0, "config": {}, "preset": preset.to_dict(),
         "generator": GenConvNet(preset.generator).state_dict(), "data": {}}
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


class _NotData:
    pass


def test_load_checkpoint_gives_one_line_and_never_suggests_unsafe_loading(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(_gen_dict(), good)
    assert bckpt.load_checkpoint(good)["format"] == "b2b-generator"
    cases = {
        "random.pt": (os.urandom(3000), "not a torch file"),
        "empty.pt": (b"", "empty"),
        "truncated.pt": (good.read_bytes()[:5000], "truncated or corrupt"),
    }
    for name, (content, why) in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"obj": _NotData()}, tmp_path / "object.pt")
    cases["object.pt"] = (None, "Python objects other than tensors")
    torch.save(_gen_dict(preset=None), tmp_path / "nopreset.pt")
    cases["nopreset.pt"] = (None, r"malformed: no 'preset'")
    torch.save(_gen_dict(preset={"name": "x"}), tmp_path / "badpreset.pt")
    cases["badpreset.pt"] = (None, r"malformed: 'preset' is not a valid preset")
    torch.save(_gen_dict(generator={"w": 3}), tmp_path / "badgen.pt")
    cases["badgen.pt"] = (None, r"'generator' is not a state dict")
    torch.save(_gen_dict(version=99), tmp_path / "v99.pt")
    cases["v99.pt"] = (None, "format version 99 is not known")
    torch.save({"format": "b2b-checkpoint", "version": 1, **{k: v for k, v in _gen_dict().items()
                                                              if k not in ("format", "version")}},
               tmp_path / "partial_ckpt.pt")
    cases["partial_ckpt.pt"] = (None, r"'critic' is not a state dict")
    for name, (_, why) in cases.items():
        with pytest.raises(ValueError, match=why) as e:
            bckpt.load_checkpoint(tmp_path / name)
        msg = str(e.value)
        assert name in msg and "weights_only" not in msg and "\n" not in msg, msg
        with pytest.raises(ValueError):
            load_generator(tmp_path / name)


def test_resume_falls_back_to_the_newest_readable_checkpoint(tmp_path, capsys):
    data = windows(10)
    Trainer(cfg(tmp_path, iterations=2, checkpoint_every=1), data).train()
    latest = tmp_path / "checkpoint_00000002.pt"
    latest.write_bytes(latest.read_bytes()[:4000])  # killed while copying, disk trouble ...
    t = Trainer(cfg(tmp_path, iterations=3, checkpoint_every=1), data, resume=True)
    err = capsys.readouterr().err
    assert t.step == 1 and t.last_checkpoint.name == "checkpoint_00000001.pt"
    assert "checkpoint_00000002.pt" in err and "truncated" in err and "resuming from checkpoint_00000001.pt" in err
    assert (tmp_path / "checkpoint_00000002.pt.unreadable").is_file() and not latest.exists()
    t.train()
    assert [p.name for p in bckpt.checkpoints(tmp_path)] == [
        "checkpoint_00000001.pt", "checkpoint_00000002.pt", "checkpoint_00000003.pt"]
    for p in bckpt.checkpoints(tmp_path):
        p.write_bytes(b"junk")
    with pytest.raises(ValueError, match="no readable checkpoint"):
        Trainer(cfg(tmp_path), data, resume=True)


def test_resume_with_other_data_of_the_same_size_is_refused(tmp_path, capsys):
    Trainer(cfg(tmp_path, iterations=1, data_name="a"), windows(10, seed=0)).train()
    ckpt = torch.load(tmp_path / "checkpoint_00000001.pt", weights_only=True)
    assert ckpt["data"]["fingerprint"] == bckpt.data_fingerprint(windows(10, seed=0).bool())
    with pytest.raises(ValueError, match="trained on other data .*same size"):
        Trainer(cfg(tmp_path, iterations=2, data_name="b"), windows(10, seed=1), resume=True)
    # the same windows as floats or bools: the same fingerprint
    assert bckpt.data_fingerprint(windows(3).bool()) == bckpt.data_fingerprint(
        Trainer(cfg(tmp_path / "x"), windows(3)).data)
    assert bckpt.data_fingerprint(windows(3, seed=1).bool()) != bckpt.data_fingerprint(windows(3).bool())
    # a checkpoint from before fingerprints: resumed with a warning
    del ckpt["data"]["fingerprint"]
    bckpt.atomic_torch_save(ckpt, tmp_path / "checkpoint_00000001.pt")
    capsys.readouterr()
    assert Trainer(cfg(tmp_path, iterations=2), windows(10, seed=1), resume=True).step == 1
    assert "predates data fingerprints" in capsys.readouterr().err


def test_leftover_temporaries_of_killed_runs_are_removed(tmp_path, capsys):
    ours = [".checkpoint_00000005.pt.0123abcd.tmp", ".history.json.deadbeef.tmp", ".samples_00000002.npy.00ff00ff.tmp"]
    others = [".notes.txt.0123abcd.tmp", "checkpoint_notes.txt", ".checkpoint_00000005.pt.xyz.tmp"]
    for name in ours + others:
        (tmp_path / name).write_bytes(b"partial")
    lock = runfolder.claim_run_folder(tmp_path, "--out")  # what b2b train does before the Trainer
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + [".lock"])
    assert "removed 3 temporary file(s)" in capsys.readouterr().err
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others)


def test_cli_removes_leftovers_of_a_killed_run(tmp_path, monkeypatch, capsys):
    _fake_data(monkeypatch, windows(6))
    out = tmp_path / "run"
    assert cli_main(_cli(out)) == 0
    (out / ".checkpoint_00000002.pt.a1b2c3d4.tmp").write_bytes(b"half a checkpoint")
    args = _cli(out, "--resume")
    args[args.index("--iterations") + 1] = "2"
    assert cli_main(args) == 0
    assert "removed 1 temporary file(s)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint_00000001.pt", "checkpoint_00000002.pt", "history.csv", "history.json"]


def test_cli_iterations_zero_and_nothing_left_to_train(tmp_path, monkeypatch, capsys):
    _fake_data(monkeypatch, windows(6))
    out = tmp_path / "run"
    args = _cli(out)
    assert cli_main(args[:4] + ["0"] + args[5:]) == 2
    assert "--iterations must be >= 1, got 0 (0 would train nothing)" in _one_line_error(capsys)
    assert not out.exists() or not list(out.glob("checkpoint_*"))
    assert cli_main(args) == 0
    capsys.readouterr()
    assert cli_main(args + ["--resume"]) == 0
    text = capsys.readouterr().out
    assert "already at step 1 >= --iterations 1; nothing to train" in text and "nan" not in text


def test_threads(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runfolder.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(runfolder.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert runfolder.default_threads() == 4  # 8 idle cores: capped at 4
    monkeypatch.setattr(runfolder.os, "getloadavg", lambda: (5.6, 0.0, 0.0))
    assert runfolder.default_threads() == 2  # 8 cores, about 6 busy
    monkeypatch.setattr(runfolder.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert runfolder.default_threads() == 1  # 2 cores, both busy: one thread, never zero
    _fake_data(monkeypatch, windows(6))
    before = torch.get_num_threads()
    assert cli_main(_cli(tmp_path / "a")[:-2] + ["--threads", "2"]) == 0
    assert "2 CPU thread(s)" in capsys.readouterr().out
    assert torch.get_num_threads() == before  # restored for whoever called main()
    assert cli_main(_cli(tmp_path / "b")[:-2] + ["--threads", "0"]) == 2
    assert "--threads must be 1..1024" in _one_line_error(capsys)


def test_a_checkpoint_written_with_hyper_parameters_in_its_config_resumes(tmp_path):
    # files written before 2026-11-29 kept the run's hyper-parameters in "config", the preset's
    # defaults in "preset": preset_of moves them into the preset, so such a run resumes as before
    data = windows(10)
    Trainer(cfg(tmp_path, iterations=1, checkpoint_every=1), data).train()
    path = tmp_path / "checkpoint_00000001.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["preset"] = get_preset("seed").to_dict()
    ckpt["preset"]["training"]["threshold"] = ckpt["preset"].pop("threshold")  # the old layout
    ckpt["config"].update(batch=4, n_critic=2, lambda_gp=10.0, lr_g=3e-4, lr_d=6e-4, betas=[0.5, 0.9],
                          lr_step_epochs=25, lr_gamma=0.75)
    bckpt.atomic_torch_save(ckpt, path)
    assert bckpt.preset_of(ckpt).training == cfg(tmp_path).preset.training
    t = Trainer(cfg(tmp_path, iterations=2), data, resume=True)
    assert t.step == 1 and len(t.train()) == 2


def test_step_with_batches_drawn_up_front_is_the_step_drawn_batch_by_batch(tmp_path):
    # train_step draws the step's n_critic batches before the iteration (what a CUDA graph needs:
    # indices copied into a static buffer); that must change nothing on the CPU
    from b2b.gan.step import wgan_gp_iteration

    data = windows(10)
    a = Trainer(cfg(tmp_path / "a", n_critic=3), data)  # each Trainer seeds the global RNG: one at a time
    sa = [a.train_step() for _ in range(3)]  # 9 batches of 4 from 10 windows: crosses a reshuffle
    pa = params(a)
    b = Trainer(cfg(tmp_path / "b", n_critic=3), data)
    for k in range(3):
        b.G.train(), b.D.train()
        sb = wgan_gp_iteration(b.G, b.D, b.opt_g, b.opt_d, b.next_batch,
                               lambda: torch.randn(b.local_batch, b.generator.latent), n_critic=3, lambda_gp=10.0)
        assert torch.equal(sa[k], sb)
    pb = params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert a.cursor == b.cursor and torch.equal(a.perm, b.perm)


def test_cuda_graph_falls_back_to_eager_with_one_line_where_it_cannot_run(tmp_path, capsys):
    data = windows(10)
    g = Trainer(cfg(tmp_path / "g", cuda_graph=True), data)
    assert "b2b: --cuda-graph: it needs CUDA; training eagerly" in capsys.readouterr().err
    assert not g.graphed and not g.opt_g.defaults["capturable"]
    g.train()
    pg = params(g)
    e = Trainer(cfg(tmp_path / "e"), data)
    e.train()
    pe = params(e)
    assert all(torch.equal(pg[k], pe[k]) for k in pg)
    assert isinstance(g.history[-1]["lr_g"], float)


def test_bf16_only_where_the_gpu_computes_it_natively(monkeypatch):
    from b2b.training import trainer as T

    assert not T.native_bf16(torch.device("cpu"))
    for capability, native in (((7, 5), False), ((8, 0), True), ((9, 0), True)):  # T4, A100, H100/H200
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert T.native_bf16(torch.device("cuda")) is native


def test_cli_accepts_cuda_graph():
    import argparse

    from b2b.training import command

    p = argparse.ArgumentParser()
    command.add_arguments(p)
    assert p.parse_args(["--cuda-graph"]).cuda_graph and not p.parse_args([]).cuda_graph


def test_resume_keeps_this_runs_optimizer_implementation(tmp_path):
    data = windows(10)
    Trainer(cfg(tmp_path, iterations=1, checkpoint_every=1), data).train()
    ck = torch.load(tmp_path / "checkpoint_00000001.pt", weights_only=True)
    for key in ("opt_g", "opt_d"):  # as written before the optimizers were fused
        for group in ck[key]["param_groups"]:
            group.update(fused=None, foreach=None)
    bckpt.atomic_torch_save(ck, tmp_path / "checkpoint_00000001.pt")
    t = Trainer(cfg(tmp_path, iterations=2, checkpoint_every=2), data, resume=True)
    assert all(g["fused"] and not g["capturable"] for o in (t.opt_g, t.opt_d) for g in o.param_groups)
    t.train()


def test_statistics_read_every_few_steps_give_the_same_history_and_catch_the_same_divergence(tmp_path):
    # on a GPU the statistics are read every READ_EVERY steps (a read waits for the device); the
    # history must not depend on it, and a non-finite loss is still named by its own step
    data = windows(10)
    ha = Trainer(cfg(tmp_path / "a", iterations=7, log_every=2), data).train()  # one at a time: each
    b = Trainer(cfg(tmp_path / "b", iterations=7, log_every=2), data)               # seeds the global RNG
    b.read_every = 3
    hb = b.train()
    assert [r["step"] for r in hb] == [2, 4, 6, 7]
    assert [{k: v for k, v in r.items() if k != "time"} for r in ha] == \
        [{k: v for k, v in r.items() if k != "time"} for r in hb]
    c = Trainer(cfg(tmp_path / "c", iterations=2, checkpoint_every=2), data)
    c.train()
    c.read_every = 4
    def poison(m, i, o):  # the third step's critic scores (and everything after) are NaN
        return o * float("nan") if c.step >= 2 else o

    c.critic.layers.linear.register_forward_hook(poison)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 3: .*checkpoint_00000002\.pt"):
        c.train(iterations=9)
    assert c.step == 2 and len(json.loads((tmp_path / "c" / "history.json").read_text())) == 2
    assert sorted(p.name for p in (tmp_path / "c").glob("checkpoint_*.pt"))[-1] == "checkpoint_00000002.pt"


@pytest.mark.parametrize("junk", ["perm_out_of_range", "perm_repeats", "history_rows", "history_values"])
def test_resume_with_a_junk_sampler_or_history_is_one_line_before_anything_is_written(tmp_path, monkeypatch,
                                                                                        capsys, junk):
    _fake_data(monkeypatch, windows(6))
    assert cli_main(_cli(tmp_path)) == 0
    path = tmp_path / "checkpoint_00000001.pt"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["digest"], ckpt["seal"]  # as a file from before digests (with its digest, any tensor change is "damaged")
    if junk == "perm_out_of_range":
        ckpt["sampler"]["perm"][0] = 10**6
    elif junk == "perm_repeats":
        ckpt["sampler"]["perm"][:] = 0
    elif junk == "history_rows":
        ckpt["history"] = [1, "x"]
    else:
        ckpt["history"] = [{"step": 1, "loss_d": "junk"}]
    torch.save(ckpt, path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert cli_main(_cli(tmp_path, "--resume", "--iterations", "3")) == 2
    err = _one_line_error(capsys)
    assert str(path) in err and ("'sampler'" in err if junk.startswith("perm") else "'history'" in err), err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written, history.csv kept


def test_resume_of_a_damaged_checkpoint_names_the_digest(tmp_path, monkeypatch, capsys):
    _fake_data(monkeypatch, windows(6))
    assert cli_main(_cli(tmp_path)) == 0
    path = tmp_path / "checkpoint_00000001.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["sampler"]["perm"][0] = 10**6  # the digest it carries no longer matches
    torch.save(ckpt, path)
    capsys.readouterr()
    assert cli_main(_cli(tmp_path, "--resume", "--iterations", "3")) == 2
    assert "is damaged" in _one_line_error(capsys)
