"""The moving average of the generator (b2b.training.ema), the track mask, and the budget presets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from b2b.model import checkpoint as bckpt
from b2b.model.checkpoint import load_checkpoint, load_generator
from b2b.training.ema import EMA, ema_decay
from b2b.sampling.export import export_generator
from b2b.model.presets import PRESETS, GeneratorConfig, TrainingConfig, get_preset
from b2b.model.networks import GenConvNet, build
from b2b.training.trainer import Trainer, TrainerConfig


def windows(n: int = 8, seed: int = 0) -> torch.Tensor:
    """Binary windows (n, 17, 64, 72) that use tracks 2 and 9 only, track 9 in the last window only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 17, 64, 72)
    x[:, 2] = (torch.rand(n, 64, 72, generator=g) < 0.05).float()
    x[-1, 9, 5, 40] = 1.0
    return x


def small(preset: str, out: Path, **kw) -> TrainerConfig:
    p = get_preset(preset).with_training(batch=4, n_critic=1, ema=0.9)
    base = dict(progress=False, checkpoint_every=1000, sample_every=0, device="cpu", seed=1)
    return TrainerConfig(preset=p, out=str(out), **{**base, **kw})


def test_decay_warms_up_then_holds():
    assert ema_decay(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.5, 100) == 0.5  # (101 / 110 > 0.5)


def test_update_moves_toward_the_weights_and_copies_buffers():
    net = nn.BatchNorm1d(2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([1.0, 3.0]))
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([5.0, -1.0]))
        net.running_mean.copy_(torch.tensor([0.25, -4.0]))
    ema.update(net, step=100)  # beta = min(0.5, 101/110) = 0.5: halfway
    assert torch.equal(ema.model.weight, torch.tensor([3.0, 1.0]))
    assert torch.equal(ema.model.running_mean, torch.tensor([0.25, -4.0]))
    ema.update(net, step=1)  # beta = 2/11: 9/11 of the way
    assert torch.allclose(ema.model.weight, torch.tensor([3 + 2 * 9 / 11, 1 - 2 * 9 / 11]))
    assert not any(p.requires_grad for p in ema.model.parameters())


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_ema_decay_is_checked(bad):
    with pytest.raises(ValueError, match="decay"):
        EMA(nn.Linear(1, 1), bad)


@pytest.mark.parametrize("bad", [1.0, -0.1])
def test_training_config_refuses_an_ema_outside_zero_to_one(bad):
    with pytest.raises(ValueError, match="ema"):
        TrainingConfig(ema=bad)


def test_track_mask_silences_the_tracks_the_data_never_uses():
    torch.manual_seed(0)
    g = GenConvNet(GeneratorConfig(silent_tracks=True)).eval()
    g.set_active_tracks(windows())
    assert g.layers.mask.active.flatten().nonzero().flatten().tolist() == [2, 9]
    y = g(torch.randn(3, g.latent))
    on = y.amax(dim=(0, 2, 3))
    assert on[2] > 0 and on[9] > 0
    assert torch.count_nonzero(on) == 2
    with pytest.raises(ValueError, match="no track mask"):
        GenConvNet().set_active_tracks(windows())


def test_budget_presets_build_and_are_cheaper_per_step():
    for name in ("streams", "lean", "economy"):
        g, d = build(name)
        assert g(torch.randn(4, g.latent)).shape == (4, 17, 64, 72)
        assert d(torch.zeros(4, 17, 64, 72)).shape == (4, 1)
    work = {n: PRESETS[n].training.n_critic * PRESETS[n].training.batch for n in ("streams", "lean", "economy")}
    assert work == {"streams": 320, "lean": 64, "economy": 16}
    assert PRESETS["lean"].training.ema == PRESETS["economy"].training.ema == 0.999


def test_trainer_keeps_exports_and_resumes_the_average(tmp_path):
    data = windows()
    straight = Trainer(small("lean", tmp_path / "a", iterations=4), data)
    straight.train()
    assert torch.equal(straight.generator.layers.mask.active.flatten().nonzero().flatten(), torch.tensor([2, 9]))
    ema_weights = {k: v.clone() for k, v in straight.ema.model.state_dict().items()}
    trained = straight.generator.state_dict()
    assert any(not torch.equal(ema_weights[k], trained[k]) for k in trained if trained[k].is_floating_point())

    first = Trainer(small("lean", tmp_path / "b", iterations=2, checkpoint_every=2), data)
    first.train()
    resumed = Trainer(small("lean", tmp_path / "b", iterations=4, checkpoint_every=2), data, resume=True)
    resumed.train()
    for k, v in resumed.ema.model.state_dict().items():
        assert torch.equal(v, ema_weights[k]), k

    ckpt = tmp_path / "b" / "checkpoint_00000004.pt"
    assert "generator_ema" in load_checkpoint(ckpt)
    g, info = load_generator(ckpt)
    assert info["weights"] == "ema"
    for k, v in g.state_dict().items():
        assert torch.equal(v, ema_weights[k]), k
    out = export_generator(ckpt, tmp_path / "generator.pt")
    g2, info2 = load_generator(out)
    assert info2["weights"] == "ema"
    assert all(torch.equal(v, ema_weights[k]) for k, v in g2.state_dict().items())
    # the run's samples come from the average
    z = torch.randn(2, g.latent)
    assert torch.equal(resumed.sample(z), g(z))


def test_resume_refuses_a_checkpoint_without_the_average(tmp_path):
    data = windows()
    Trainer(small("lean", tmp_path / "r", iterations=1, checkpoint_every=1), data).train()
    path = tmp_path / "r" / "checkpoint_00000001.pt"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["generator_ema"]
    bckpt.atomic_torch_save(ckpt, path)  # sealed again: a whole file that lacks the average
    with pytest.raises(ValueError, match="generator_ema"):
        Trainer(small("lean", tmp_path / "r", iterations=2), data, resume=True)


def test_presets_without_the_average_write_none(tmp_path):
    cfg = small("streams", tmp_path / "s", iterations=1, checkpoint_every=1)
    cfg = dataclasses.replace(cfg, preset=cfg.preset.with_training(ema=0.0))
    t = Trainer(cfg, windows())
    t.train()
    assert t.ema is None
    assert "generator_ema" not in load_checkpoint(tmp_path / "s" / "checkpoint_00000001.pt")
    assert load_generator(tmp_path / "s" / "checkpoint_00000001.pt")[1]["weights"] == "trained"
