"""Tests for b2b.train: steps, resume, NaN guard, checkpoints, precision, DDP, CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b import train as btrain
from b2b.cli import main as cli_main
from b2b.losses import critic_loss
from b2b.nn import DiscConvNet, CriticConfig
from b2b.train import Trainer, TrainerConfig, TrainingDiverged, export_generator, load_generator


def windows(n: int = 10, seed: int = 0, density: float = 0.05) -> torch.Tensor:
    """Synthetic binary windows (n, 17, 64, 72); denser low tracks so samples are not alike."""
    g = torch.Generator().manual_seed(seed)
    dens = torch.linspace(density * 2, density / 4, 17).view(1, 17, 1, 1)
    return (torch.rand(n, 17, 64, 72, generator=g) < dens).float()


def cfg(out: Path, **kw) -> TrainerConfig:
    base = dict(preset="seed", iterations=2, batch=4, n_critic=2, out=str(out), progress=False,
                checkpoint_every=1000, sample_every=0, device="cpu", seed=3)
    base.update(kw)
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
    # 10 windows, batch 4, 2 critic steps: 0.8 epoch per step; StepLR every epoch x0.5
    t = Trainer(cfg(tmp_path, iterations=3, lr_step_epochs=1, lr_gamma=0.5), windows(10))
    hist = t.train()
    assert [round(r["epoch"], 6) for r in hist] == [0.8, 1.6, 2.4]
    assert [r["lr_g"] for r in hist] == pytest.approx([3e-4, 1.5e-4, 7.5e-5])
    assert [r["lr_d"] for r in hist] == pytest.approx([6e-4, 3e-4, 1.5e-4])


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


def test_resume_errors(tmp_path):
    data = windows(10)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(cfg(tmp_path), data, resume=True)
    Trainer(cfg(tmp_path, iterations=1), data).train()
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(cfg(tmp_path), data)
    with pytest.raises(ValueError, match="preset 'seed'.*'improved'"):
        Trainer(cfg(tmp_path, preset="improved"), data, resume=True)
    with pytest.raises(ValueError, match="10 windows.*9"):
        Trainer(cfg(tmp_path), windows(9), resume=True)
    with pytest.raises(ValueError, match="batch 4 != 2"):
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
    assert list(rows[0]) == btrain.HISTORY_FIELDS
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
    assert info["threshold"] == 0.9 and info["latent"] == 128
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
        import b2b.plot  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "samples_00000002.png").read_bytes()[:4] == b"\x89PNG"


def test_bf16_autocast_penalty_matches_fp32_on_cpu():
    torch.manual_seed(5)
    d = DiscConvNet(CriticConfig(norm="layer", dropout=0.0))
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


def test_bf16_trainer_step_on_cpu(tmp_path):
    t = Trainer(cfg(tmp_path, iterations=1, precision="bf16"), windows())
    assert t.amp
    hist = t.train()
    assert all(math.isfinite(hist[0][k]) for k in ["loss_d", "loss_g", "penalty"])
    assert all(p.dtype == torch.float32 for p in t.generator.parameters())


def test_resolve_device():
    assert btrain.resolve_device("cpu").type == "cpu"
    assert btrain.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            btrain.resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        btrain.resolve_device("tpu9")


def test_config_defaults_come_from_the_preset():
    c = TrainerConfig(preset="seed").resolved()
    assert (c.batch, c.n_critic, c.lambda_gp, c.lr_g, c.lr_d, c.betas) == (64, 5, 10.0, 3e-4, 6e-4, (0.5, 0.9))
    assert (c.lr_step_epochs, c.lr_gamma) == (25, 0.75)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainerConfig(preset="nope").resolved()
    assert json.loads(json.dumps(c.to_dict()))["betas"] == [0.5, 0.9]


# ----------------------------------------------------------------------------- CLI
def test_cli_errors(capsys, tmp_path):
    assert cli_main(["train", "--preset", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err and "seed" in err and len(err.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        assert cli_main(["train", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_cli_trains_on_a_dataset(tmp_path, monkeypatch, capsys):
    data = pytest.importorskip("b2b.data")
    if not hasattr(data, "open_dataset"):
        pytest.skip("b2b.data.open_dataset not available yet")
    x = windows(6)
    monkeypatch.setattr(data, "open_dataset", lambda name, root=None: x)
    out = tmp_path / "run"
    args = ["train", "--data", "fake", "--iterations", "2", "--batch", "2", "--out", str(out), "--no-progress",
            "--checkpoint-every", "1", "--sample-every", "0"]
    assert cli_main(args) == 0
    assert (out / "checkpoint_00000002.pt").is_file()
    assert cli_main(args[:4] + ["3"] + args[5:] + ["--resume"]) == 0
    assert (out / "checkpoint_00000003.pt").is_file()
    monkeypatch.setattr(data, "open_dataset", lambda name, root=None: torch.zeros(3, 17, 64, 70))
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
            continue  # batch-norm statistics are per rank (see b2b.train)
        assert torch.equal(v, r1["final"][k]), k
    assert any(not torch.equal(r0["init"][k], r0["final"][k]) for k in r0["init"])
    # logged statistics are averaged over the ranks
    assert [r["loss_d"] for r in r0["history"]] == [r["loss_d"] for r in r1["history"]]
    assert len(r0["history"]) == 2
    ckpt = torch.load(tmp_path / "out" / "checkpoint_00000002.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
