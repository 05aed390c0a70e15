"""Tests for b2b.model.attention.SelfAttention: shapes, identity at gamma = 0, a naive loop
implementation, and agreement with the final version built in the self-attention chapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from b2b.model.attention import SelfAttention

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "04_self_attention.ipynb"


def block(channels: int = 16, gamma: float = 0.7, seed: int = 0, reduction: int = 8) -> SelfAttention:
    torch.manual_seed(seed)
    m = SelfAttention(channels, reduction=reduction).double()
    with torch.no_grad():
        m.gamma.fill_(gamma)
    return m


def naive(m: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Self-attention written with explicit loops over samples and positions."""
    b, _, h, w = x.shape
    wq, bq = m.query.weight[:, :, 0, 0], m.query.bias
    wk, bk = m.key.weight[:, :, 0, 0], m.key.bias
    wv, bv = m.value.weight[:, :, 0, 0], m.value.bias
    out = torch.empty_like(x)
    positions = [(i, j) for i in range(h) for j in range(w)]  # row-major, like flatten
    for n in range(b):
        feats = [x[n, :, i, j] for i, j in positions]
        qs = [wq @ f + bq for f in feats]
        ks = [wk @ f + bk for f in feats]
        vs = [wv @ f + bv for f in feats]
        for p, (i, j) in enumerate(positions):
            scores = torch.stack([qs[p] @ kk for kk in ks])
            weights = torch.exp(scores - scores.max())
            weights = weights / weights.sum()
            o = sum(wt * vv for wt, vv in zip(weights, vs))
            out[n, :, i, j] = x[n, :, i, j] + m.gamma[0] * o
    return out


def test_shapes_and_reduction():
    m = SelfAttention(16)
    x = torch.randn(2, 16, 5, 3)
    assert m(x).shape == x.shape
    assert m.attention(x).shape == (2, 15, 15)
    assert m.query.out_channels == 2 and m.key.out_channels == 2 and m.value.out_channels == 16
    assert SelfAttention(4).query.out_channels == 1  # at least one channel
    assert SelfAttention(24, reduction=1).key.out_channels == 24
    assert m.gamma.shape == (1,) and m.gamma.item() == 0.0
    with pytest.raises(ValueError):
        SelfAttention(0)


def test_identity_at_gamma_zero():
    torch.manual_seed(0)
    m = SelfAttention(8)
    x = torch.randn(3, 8, 4, 2)
    assert torch.equal(m(x), x)


def test_rows_are_distributions():
    m = block()
    a = m.attention(torch.randn(2, 16, 6, 2, dtype=torch.float64))
    assert (a >= 0).all()
    assert torch.allclose(a.sum(dim=-1), torch.ones(2, 12, dtype=torch.float64))


def test_matches_naive_loop_implementation():
    m = block(channels=16, gamma=0.7, seed=3)
    torch.manual_seed(4)
    x = torch.randn(2, 16, 4, 3, dtype=torch.float64)  # non-square map: catches H/W mix-ups
    assert torch.allclose(m(x), naive(m, x), atol=1e-10)


def test_gradient_reaches_gamma_and_projections():
    torch.manual_seed(0)
    m = SelfAttention(8)
    x = torch.randn(2, 8, 3, 2)
    target = torch.randn_like(x)
    ((m(x) - target) ** 2).sum().backward()
    assert m.gamma.grad is not None and m.gamma.grad.abs().item() > 0
    # at gamma = 0 the branch's own weights get no gradient yet; after a step of gamma they do
    assert m.value.weight.grad.abs().max().item() == 0.0
    m.zero_grad()
    with torch.no_grad():
        m.gamma.fill_(0.5)
    ((m(x) - target) ** 2).sum().backward()
    for p in (m.query.weight, m.key.weight, m.value.weight):
        assert p.grad.abs().max().item() > 0


def test_attends_to_matching_key():
    """With hand-set weights a query position attends to the position with the same content."""
    m = SelfAttention(4, reduction=1)
    with torch.no_grad():
        for conv in (m.query, m.key, m.value):
            conv.weight.copy_(10 * torch.eye(4).view(4, 4, 1, 1))
            conv.bias.zero_()
    x = torch.zeros(1, 4, 4, 1)
    for t, c in enumerate([0, 1, 2, 0]):  # positions 0 and 3 hold the same one-hot feature
        x[0, c, t, 0] = 1.0
    a = m.attention(x)[0]
    assert a[3, 0].item() == pytest.approx(a[3, 3].item()) and a[3, 0].item() > 0.49


def final_version_from_chapter() -> type[nn.Module]:
    nb = json.loads(CHAPTER.read_text())
    cells = [c for c in nb["cells"] if "final-version" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged final-version in {CHAPTER}, found {len(cells)}"
    namespace: dict = {}
    exec(compile("".join(cells[0]["source"]), str(CHAPTER), "exec"), namespace)  # noqa: S102 (our own chapter)
    return namespace["SelfAttention"]


def test_chapter_final_version_equals_package():
    Chapter = final_version_from_chapter()
    assert Chapter is not SelfAttention
    for channels, reduction in [(16, 8), (24, 1), (4, 8)]:
        pkg = block(channels, gamma=-0.3, seed=channels, reduction=reduction).float()
        ch = Chapter(channels, reduction=reduction)
        assert set(ch.state_dict()) == set(pkg.state_dict())
        ch.load_state_dict(pkg.state_dict())
        x = torch.randn(2, channels, 6, 3)
        assert torch.equal(ch(x), pkg(x))
        assert torch.equal(ch.attention(x), pkg.attention(x))
    fresh = Chapter(8)
    assert fresh.gamma.item() == 0.0


def test_positions_are_a_set_and_samples_are_attended_alone():
    """Self-attention has no notion of where a position is: shuffling the positions of the input
    shuffles the output the same way. And no sample sees another. A wrong reshape between
    (C, H, W) and (N, C), or a product over the batch axis, breaks one of the two."""
    m = block(16, gamma=0.8, seed=4)
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(3, 16, 5, 3, generator=gen, dtype=torch.float64)   # H != W, 15 positions
    perm = torch.randperm(15, generator=gen)
    shuffle = lambda t: t.flatten(2)[:, :, perm].view_as(t)            # noqa: E731
    assert not torch.equal(perm, torch.arange(15))
    assert torch.allclose(m(shuffle(x)), shuffle(m(x)), atol=1e-12)
    alone = torch.cat([m(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(m(x), alone, atol=1e-12)
    other = x.clone()
    other[1:] = torch.randn(2, 16, 5, 3, generator=gen, dtype=torch.float64)
    assert torch.equal(m(other)[0], m(x)[0])
