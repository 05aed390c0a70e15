"""Self-attention over the positions of a feature map: the SAGAN block (Zhang et al. 2018).

Query and key are 1x1 convolutions to ``C // 8`` channels, the value a 1x1 convolution to ``C``
channels; attention weights are a softmax over key positions (each row sums to 1), and the
output is ``x + gamma * attention(x)`` with ``gamma`` a learned scalar initialised to 0, so the
block starts as the identity and learns how much non-local context to mix in.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SelfAttention(nn.Module):
    """SAGAN self-attention block for feature maps ``(B, C, H, W)``.

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
