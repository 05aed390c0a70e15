"""The critic's extra streams (b2b.model.streams) and the generator's refiner (b2b.model.refiner), on
hand-made windows whose expected values are worked out by hand in the comments."""

import dataclasses

import pytest
import torch

from b2b.gan.losses import critic_loss
from b2b.model.networks import DiscConvNet, GenConvNet
from b2b.model.presets import CriticConfig, GeneratorConfig, Preset, get_preset
from b2b.model.refiner import Refiner
from b2b.model.streams import ChromaStream, OnsetStream, chroma, onsets_offsets, stream_width


def _window() -> torch.Tensor:
    """One asymmetric window: track 2 holds pitch 7 at steps 0-1 and pitch 5 at steps 3-6,
    pitch 17 (an F an octave above pitch 5) at step 4; track 9 plays pitch 70 at step 63."""
    x = torch.zeros(1, 17, 64, 72)
    x[0, 2, 0:2, 7] = 1
    x[0, 2, 3:7, 5] = 1
    x[0, 2, 4, 17] = 1
    x[0, 9, 63, 70] = 1
    return x


def test_onsets_offsets_by_hand():
    y = onsets_offsets(_window())
    assert y.shape == (1, 34, 64, 1)
    want = torch.zeros(34, 64)
    want[2, 0] = 1  # pitch 7 starts at step 0 (nothing before the window)
    want[2, 3] = 1  # pitch 5 starts at step 3
    want[2, 4] = 1  # pitch 17 starts at step 4
    want[17 + 2, 2] = 1  # pitch 7 ended after step 1
    want[17 + 2, 5] = 1  # pitch 17 ended after step 4
    want[17 + 2, 7] = 1  # pitch 5 ended after step 6
    want[9, 63] = 1  # track 9's note starts at the last step and never ends inside the window
    assert torch.equal(y[0, :, :, 0], want)


def test_chroma_by_hand():
    y = chroma(_window())
    assert y.shape == (1, 17, 16, 12)
    want = torch.zeros(17, 16, 12)
    want[2, 0, 7] = 2  # beat 0 (steps 0-3): pitch 7 (class 7) at steps 0 and 1
    want[2, 0, 5] = 1  # ... and pitch 5 at step 3
    want[2, 1, 5] = 4  # beat 1 (steps 4-7): pitch 5 at 4, 5, 6 and pitch 17 (class 5) at 4
    want[9, 15, 10] = 1  # beat 15: pitch 70 is class 70 % 12 = 10
    assert torch.equal(y[0], want)


def test_streams_shapes_and_gradients():
    x = torch.rand(3, 17, 64, 72, requires_grad=True)
    for s in (OnsetStream(8), ChromaStream(8)):
        f = s(x)
        assert f.shape == (3, 32) and s.features == 32
        (g,) = torch.autograd.grad(f.sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def _critic(streams: int) -> DiscConvNet:
    torch.manual_seed(0)
    return DiscConvNet(CriticConfig(norm="layer", dropout=0.0, channels=8, minibatch_std=True, streams=streams))


def test_critic_with_streams_scores_each_window_and_has_a_penalty():
    d = _critic(4)
    assert set(d.streams) == {"onsets", "chroma"} and d.layers.linear.in_features == 2 * 9 + 2 * 16
    real, fake = (torch.rand(8, 17, 64, 72) < 0.01).float(), torch.rand(8, 17, 64, 72)
    assert d(real).shape == (8, 1)
    eps = torch.rand(8)
    apart, _ = critic_loss(d, real, fake, eps=eps)
    joint, _ = critic_loss(d, real, fake, eps=eps, joint=True)
    assert d.scores_apart(8) and torch.allclose(apart, joint, atol=1e-5)
    with_gp, _ = critic_loss(d, real, fake, eps=eps, lambda_gp=10.0)  # the penalty: twice through the streams
    without, _ = critic_loss(d, real, fake, eps=eps, lambda_gp=0.0)
    w = d.streams["onsets"].layers[0][0].weight
    (g,) = torch.autograd.grad(with_gp - without, w)  # the penalty's own gradient
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_onsets_count_notes_not_cells():
    """A held note and the same pitch restruck every other step: one onset against four, which
    is what lets a streams critic see fragmentation directly."""
    held = torch.zeros(1, 17, 64, 72)
    held[0, 5, 0:8, 30] = 1
    struck = held.clone()
    struck[0, 5, 1:8:2, 30] = 0  # on-off-on-off: four notes of one step
    on_held, on_struck = onsets_offsets(held)[0, 5, :, 0], onsets_offsets(struck)[0, 5, :, 0]
    assert on_held.sum() == 1 and on_struck.sum() == 4


def test_old_configs_and_state_dicts_are_unchanged():
    """A critic or generator without the new parts has the same parameters as before (so old
    checkpoints load), and a preset written before the fields existed reads with them off."""
    assert not hasattr(_critic(0), "streams")
    keys = set(GenConvNet(GeneratorConfig()).state_dict())
    assert not any(k.startswith("layers.refiner") for k in keys)
    d = get_preset("improved").to_dict()
    del d["generator"]["refiner"], d["critic"]["streams"]
    p = Preset.from_dict(d)
    assert p.generator.refiner == 0 and p.critic.streams == 0
    q = dataclasses.replace(p, generator=dataclasses.replace(p.generator, refiner=2),
                            critic=dataclasses.replace(p.critic, streams=16))
    assert Preset.from_dict(q.to_dict()) == q


@pytest.mark.parametrize("bad", [{"refiner": -1}, {"refiner": True}, {"refiner": 1.5}])
def test_bad_refiner_is_refused(bad):
    with pytest.raises(ValueError, match="refiner"):
        GeneratorConfig(**bad)


@pytest.mark.parametrize("bad", [-1, True, 2.0])
def test_bad_streams_is_refused(bad):
    with pytest.raises(ValueError, match="streams"):
        CriticConfig(streams=bad)


def test_a_new_refiner_is_the_identity():
    """conv2 starts at zero: the generator with a refiner makes exactly the windows of the one
    without (the refiner is built after every other layer, so the other weights are the same)."""
    torch.manual_seed(1)
    plain = GenConvNet(GeneratorConfig(binary=True)).eval()
    torch.manual_seed(1)
    refined = GenConvNet(GeneratorConfig(binary=True, refiner=2)).eval()
    z = torch.randn(4, 128)
    assert torch.equal(plain(z), refined(z))


def test_refiner_works_along_time_per_track():
    """With conv1 the identity, the PReLU the identity and conv2 of track 3 a tap one step ahead,
    one unit adds x[t + 1] to track 3 only, pitch by pitch."""
    r = Refiner(units=1, hidden=1, kernel=5)
    unit = r.units[0]
    with torch.no_grad():
        unit[0].weight.zero_(), unit[0].bias.zero_()
        unit[0].weight[:, 0, 2, 0] = 1  # centre tap: identity for every track
        unit[1].weight.fill_(1.0)  # PReLU with slope 1: identity
        unit[2].weight[3, 0, 3, 0] = 1  # track 3: the tap one step later
    x = torch.randn(2, 17, 64, 72)
    want = x.clone()
    want[:, 3, :-1] += x[:, 3, 1:]  # the last step sees the zero padding
    assert torch.allclose(r(x), want, atol=1e-6)


@pytest.mark.parametrize("lowest", [24, 25, 31])
def test_chroma_takes_pitch_classes_from_the_lowest_pitch(lowest):
    # a pitch-class offset that ignores the geometry's lowest pitch would pass at 24 (a C) only:
    # the classes come from metrics.pitch_classes, an independent one-hot count per step and beat
    from b2b.evaluation.metrics import pitch_classes

    g = torch.Generator().manual_seed(3)
    x = (torch.rand(2, 17, 64, 72, generator=g) < 0.05).float()
    onehot = torch.eye(12)[torch.as_tensor(pitch_classes(lowest=lowest))]  # (72, 12)
    expected = (x @ onehot).reshape(2, 17, 16, 4, 12).sum(3)
    assert torch.equal(chroma(x, lowest=lowest), expected)
    # one note: MIDI 61 (a C#) in beat 2 of track 5 lands in class 1 whatever its row
    one = torch.zeros(1, 17, 64, 72)
    one[0, 5, 9, 61 - lowest] = 1
    c = chroma(one, lowest=lowest)
    assert c[0, 5, 2, 1] == 1 and c.sum() == 1


def test_the_critic_reads_the_streams_widths():
    from b2b.model.presets import CriticConfig as Config

    d = DiscConvNet(Config(streams=8, minibatch_std=True, norm="layer"))
    assert d.layers.linear.in_features == (16 + 1) * 2 + d.streams["onsets"].features + d.streams["chroma"].features
    assert d.streams["onsets"].features == d.streams["chroma"].features == stream_width(8) == 8 * 4
