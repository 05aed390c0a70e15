"""Two extra views of a window for the critic: note onsets/offsets and chroma per beat.

BinaryMuseGAN (Dong & Yang 2018, "Convolutional Generative Adversarial Networks with Binary
Neurons for Polyphonic Music Generation", ISMIR) gives its critic, beside the pianoroll, an
*onset/offset stream* (differences along time, summed over pitch) and a *chroma stream* (pitch
classes per beat), so that it sees note lengths and harmony directly rather than having to learn
them from cells. This module writes both views as plain functions (:func:`onsets_offsets`,
:func:`chroma`) and each as a small convolutional stream whose features the critic concatenates
with its own before the last linear layer (:class:`b2b.model.networks.DiscConvNet` with ``streams=True``).

Departures from BinaryMuseGAN: onsets and offsets are two channels (the positive and negative
parts of the time difference, each summed over pitch) instead of one signed sum, in which an
onset and an offset at the same step in different pitches cancel; chroma is summed over all
octaves of each track and over the four steps of a beat. Both views are piecewise linear in the
window, so the gradient penalty's double backward goes through them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from b2b.music.geometry import LOWEST_PITCH, N_BARS, N_PITCHES, N_STEPS, N_TRACKS, STEPS_PER_BEAT

__all__ = ["onsets_offsets", "chroma", "stream_width", "OnsetStream", "ChromaStream"]

N_PITCH_CLASSES = 12


def onsets_offsets(x: Tensor) -> Tensor:
    """Per track and step, how many pitches start and how many end: ``(B, 17, 64, 72)`` -> ``(B, 34, 64, 1)``.

    With ``d[t] = x[t] - x[t-1]`` along time (``x[-1] = 0``: a note on at step 0 starts there),
    channel ``k`` (``k < 17``) is the sum over pitch of ``relu(d)`` of track ``k`` (onsets) and
    channel ``17 + k`` that of ``relu(-d)`` (offsets: a note that ends at step ``t - 1``).
    For 0/1 windows these are counts; for probabilities, soft counts.
    """
    d = x - F.pad(x, (0, 0, 1, 0))[:, :, :-1]  # x[t] - x[t-1], (B, 17, 64, 72)
    return torch.cat([F.relu(d).sum(-1, keepdim=True), F.relu(-d).sum(-1, keepdim=True)], dim=1)


def chroma(x: Tensor, lowest: int = LOWEST_PITCH) -> Tensor:
    """Pitch-class activity per track and beat: ``(B, 17, 64, 72)`` -> ``(B, 17, 16, 12)``.

    Entry ``(b, k, j, c)`` sums the cells of track ``k`` in beat ``j`` (steps ``4j .. 4j+3``)
    over every pitch of class ``c`` (C = 0, C# = 1, ...), all six octaves together. Row ``p`` is
    MIDI pitch ``lowest + p``, of class ``(lowest + p) % 12``, as
    :func:`b2b.evaluation.metrics.pitch_classes` says.
    """
    b, k, t, p = x.shape
    y = x.reshape(b, k, t // STEPS_PER_BEAT, STEPS_PER_BEAT, p // N_PITCH_CLASSES, N_PITCH_CLASSES)
    y = y.sum(dim=(3, 4))  # by row % 12
    offset = lowest % N_PITCH_CLASSES  # row 0 is of this class (0 for the geometry's MIDI 24, a C)
    return y.roll(offset, dims=-1) if offset else y


def stream_width(channels: int) -> int:
    """Features a stream (:class:`OnsetStream` or :class:`ChromaStream`) of ``channels`` gives the
    critic: one per channel and bar, ``channels * 4``."""
    return channels * N_BARS


def _block(conv: nn.Module, channels: int) -> nn.Sequential:
    """A stream block: convolution, per-sample layer norm (``GroupNorm(1, C)``), PReLU."""
    return nn.Sequential(conv, nn.GroupNorm(1, channels), nn.PReLU())


class OnsetStream(nn.Module):
    """Critic features from :func:`onsets_offsets`: ``(B, 17, 64, 72)`` -> ``(B, channels * 4)``.

    Layers (one line each, output shape)::

        onsets_offsets                                  -> (B, 34, 64, 1)
        block1  Conv2d(34 -> c, k=(4,1), s=(4,1)) + LN + PReLU   -> (B, c, 16, 1)   one beat each
        block2  Conv2d( c -> c, k=(4,1), s=(4,1)) + LN + PReLU   -> (B, c,  4, 1)   one bar each
        flatten                                         -> (B, 4c)
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.layers = nn.Sequential(
            _block(nn.Conv2d(2 * N_TRACKS, c, kernel_size=(4, 1), stride=(4, 1)), c),  # -> (B, c, 16, 1)
            _block(nn.Conv2d(c, c, kernel_size=(4, 1), stride=(4, 1)), c),  # -> (B, c, 4, 1)
            nn.Flatten(),  # -> (B, 4c)
        )
        self.features = stream_width(c)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 17, 64, 72)`` -> ``(B, channels * 4)``."""
        return self.layers(onsets_offsets(x))


class ChromaStream(nn.Module):
    """Critic features from :func:`chroma`: ``(B, 17, 64, 72)`` -> ``(B, channels * 4)``.

    Layers (one line each, output shape)::

        chroma                                          -> (B, 17, 16, 12)
        block1  Conv2d(17 -> c, k=(1,12))         + LN + PReLU   -> (B, c, 16, 1)   one beat each
        block2  Conv2d( c -> c, k=(4,1), s=(4,1)) + LN + PReLU   -> (B, c,  4, 1)   one bar each
        flatten                                         -> (B, 4c)
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.layers = nn.Sequential(
            _block(nn.Conv2d(N_TRACKS, c, kernel_size=(1, N_PITCH_CLASSES)), c),  # -> (B, c, 16, 1)
            _block(nn.Conv2d(c, c, kernel_size=(4, 1), stride=(4, 1)), c),  # -> (B, c, 4, 1)
            nn.Flatten(),  # -> (B, 4c)
        )
        self.features = stream_width(c)
        assert N_PITCHES % N_PITCH_CLASSES == 0 and N_STEPS % STEPS_PER_BEAT == 0

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 17, 64, 72)`` -> ``(B, channels * 4)``."""
        return self.layers(chroma(x))
