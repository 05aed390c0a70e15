"""Self-attention over the positions of a feature map: the SAGAN block (Zhang et al. 2019,
"Self-Attention Generative Adversarial Networks", ICML 2019, arXiv:1805.08318), simplified.

Query and key are 1x1 convolutions to ``C // 8`` channels, the value a 1x1 convolution to ``C``
channels; attention weights are a softmax over key positions (each row sums to 1, no
``1/sqrt(d)`` scaling), and the output is ``x + gamma * attention(x)`` with ``gamma`` a learned
scalar initialised to 0, so the block starts as the identity and learns how much non-local
context to mix in.

Where it departs from the paper: the paper's values go to ``C // 8`` channels (``W_h``) and the
attended values pass through an output projection ``W_v`` back to ``C`` channels; this block has
no output projection and its single value convolution keeps ``C`` channels. Because the
attention average is linear, ``W_v (sum_j a_ij W_h x_j) = (W_v W_h) (sum_j a_ij x_j)``: the
paper's block is the special case whose ``C x C`` value weight is the rank-``C // 8`` product
``W_v W_h`` (with zero value bias), at the price of ``C * C + C`` value parameters instead of
``C * C // 4``. The 1x1 convolutions have biases; unlike the authors' released code there is no
spectral normalisation, no 2x2 max-pooling of keys and values, and no ``C // 2`` value width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SelfAttention(nn.Module):
    """SAGAN self-attention block for feature maps ``(B, C, H, W)``, without the paper's output
    projection (see the module docstring).

    Parameters
    ----------
    channels : int
        Number of input (and output) channels ``C``.
    reduction : int
        Query/key channels are ``max(1, C // reduction)`` (8 in SAGAN).
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, kernel_size=1)
        self.key = nn.Conv2d(channels, inner, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: Tensor) -> Tensor:
        """Attention weights ``(B, N, N)`` with ``N = H * W``; row ``i`` (a query position)
        is a distribution over key positions ``j`` (rows sum to 1)."""
        q = self.query(x).flatten(2)  # (B, C', N)
        k = self.key(x).flatten(2)  # (B, C', N)
        return torch.softmax(q.transpose(1, 2) @ k, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """``x + gamma * (value attended by each position)``, same shape as ``x``."""
        b, c, h, w = x.shape
        attn = self.attention(x)  # (B, N, N)
        v = self.value(x).flatten(2)  # (B, C, N)
        out = (v @ attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out
