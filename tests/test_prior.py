"""The generator's output bias per track and pitch (GeneratorConfig.prior) and its start from data."""

import math

import pytest
import torch

from b2b.model.networks import GenConvNet

from b2b.model.presets import GeneratorConfig, get_preset
from b2b.training.trainer import Trainer, TrainerConfig


def _windows() -> torch.Tensor:
    """Two windows: track 4 pitch 10 on for 16 of 128 steps in all (1/8); track 0 pitch 71 on
    for 96 of 128 (above the 0.5 cap); everything else never."""
    x = torch.zeros(2, 17, 64, 72, dtype=torch.bool)
    x[0, 4, 0:10, 10] = True
    x[1, 4, 50:56, 10] = True
    x[:, 0, 0:48, 71] = True
    return x


def test_set_prior_is_the_log_odds_by_hand():
    g = GenConvNet(GeneratorConfig(prior=True)).set_prior(_windows(), floor=1e-3)
    b = g.layers.prior.bias[0, :, 0, :]  # (17, 72)
    assert b[4, 10].item() == pytest.approx(math.log((1 / 8) / (7 / 8)), abs=1e-6)
    assert b[0, 71].item() == pytest.approx(0.0, abs=1e-6)  # 0.75 capped at 0.5: log-odds 0
    assert b[4, 11].item() == pytest.approx(math.log(1e-3 / (1 - 1e-3)), abs=1e-6)  # never on: the floor
    assert (b == b[4, 11]).sum() == 17 * 72 - 2


def test_a_new_prior_generator_follows_the_data_share():
    """With the rest of the network's logits small, the probabilities are the data's shares."""
    torch.manual_seed(0)
    g = GenConvNet(GeneratorConfig(prior=True, norm="layer")).set_prior(_windows(), floor=1e-3).eval()
    p = g(torch.randn(64, 128))
    assert p[:, 4, :, 10].mean().item() == pytest.approx(1 / 8, abs=0.05)
    assert p[:, 4, :, 11].mean().item() < 0.01


def test_without_prior_set_prior_is_refused():
    with pytest.raises(ValueError, match="prior=True"):
        GenConvNet(GeneratorConfig()).set_prior(_windows())


def test_the_trainer_starts_the_prior_from_its_data(tmp_path):
    base = get_preset("improved")
    preset = base.with_overrides({"generator": {"prior": True}}, "prior").with_training(batch=4)
    x = torch.zeros(8, 17, 64, 72, dtype=torch.bool)
    x[:, 5, ::2, 30] = True  # half the steps: log-odds 0
    tr = Trainer(TrainerConfig(preset=preset, iterations=1, out=str(tmp_path / "run"), progress=False,
                               sample_every=0), x)
    b = tr.generator.layers.prior.bias[0, :, 0, :]
    assert b[5, 30].item() == pytest.approx(0.0, abs=1e-6) and b[5, 31].item() < -9
