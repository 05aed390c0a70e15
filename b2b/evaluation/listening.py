"""A listening test every reader can take: "Which one is Bach?", in a static page.

The original project asked listeners to spot its generated pieces (30% did). Chapter 7 turns that
study into a quiz in the book's page: :func:`listening_quiz` renders pairs of clips, one real
window and one generated window each, into HTML with the sound embedded (``data:`` URIs, so a
clip has no file name), and ``_static/b2b-listening.js`` lets the reader pick which clip of each
pair is Bach, then shows the score and how a coin would have done (:func:`p_at_least`). The page
runs no Python: everything after the build happens in the reader's browser.
In a notebook (the chapter's Colab copy) there is no such script: the reader types the picks and
:meth:`ListeningQuiz.score` says what the page would have said.

The name says what the module is about: a *listening* test, the human counterpart of the
classifier two-sample test of :mod:`b2b.evaluation.twosample`; the quiz is its form in a page.

Which clip of a pair is Bach is drawn with a fixed seed at build time, so the build is
reproducible. It is balanced (Bach comes first in half the pairs, so always picking the first
clip scores exactly half) and it cannot be read from the page at a glance: both clips of a pair
carry the same markup, and the answer is stored as a number per pair (``data-b2b-key``) whose
:func:`key_hash` parity says which clip is Bach (:func:`answer_key` decodes it). That hides the
answer from the eye, not from a reader who decodes the page on purpose: a static page cannot
keep a secret.
"""

from __future__ import annotations

import base64
import html as html_lib
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from b2b.music.audio import AUDIO_FORMATS, check_tempo, encode, render, resolve_format
from b2b.music.geometry import N_TRACKS, TRACKS, binarize, check_threshold

__all__ = ["MAX_PAIRS", "ListeningQuiz", "listening_quiz", "p_at_least", "key_hash", "answer_key"]

#: Most pairs a quiz may hold (each pair embeds two clips of about 30 kB as MP3).
MAX_PAIRS = 50

_M32 = 0xFFFFFFFF
_KEY = re.compile(r'data-b2b-key="(\d+)"')


def key_hash(x: int) -> int:
    """A 32-bit integer hash (Chris Wellons' *lowbias32*); its twin is ``hash32`` in the page.

    Parameters
    ----------
    x : int
        An integer in [0, 2**32).

    Returns
    -------
    int
        The hash, in [0, 2**32). Its lowest bit is a pair's answer: 0 = the first clip is Bach.
    """
    x &= _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def p_at_least(k: int, n: int, p: float = 0.5) -> float:
    """Probability of at least ``k`` successes in ``n`` tries, each a success with probability ``p``.

    The binomial tail ``sum(C(n, i) p**i (1 - p)**(n - i) for i >= k)``. With ``p = 0.5`` it is a
    fair coin's chance of getting at least ``k`` of ``n`` pairs right, computed exactly in
    integers; the page computes the same number (``pAtLeast`` in ``_static/b2b-listening.js``).

    Parameters
    ----------
    k : int
        Successes, ``0 <= k <= n``.
    n : int
        Tries, ``n >= 1``.
    p : float
        Chance of a success per try, in [0, 1].

    Returns
    -------
    float
        In [0, 1]; 1 for ``k = 0``.
    """
    ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (k, n))
    if not ok or not 0 <= k <= n or n < 1:
        raise ValueError(f"p_at_least: expected integers 0 <= k <= n, n >= 1, got k={k!r}, n={n!r}")
    if not (isinstance(p, (int, float, np.floating)) and not isinstance(p, bool) and 0.0 <= p <= 1.0):
        raise ValueError(f"p_at_least: expected a probability p in [0, 1], got {p!r}")
    k, n = int(k), int(n)
    if p == 0.5:
        return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n
    return float(min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))))


@dataclass(frozen=True)
class ListeningQuiz:
    """A quiz made by :func:`listening_quiz`; displayed in a notebook, it shows :attr:`html`.

    Attributes
    ----------
    html : str
        The quiz's markup, clips embedded; ``_static/b2b-listening.js`` brings it to life.
    bach_first : tuple of bool
        Per pair, whether the first clip (A) is the real window: the answer key, for tests
        and for the author (the page holds it only encoded, see :func:`answer_key`). Pair ``i``
        plays real window ``i`` and generated window ``i``.
    """

    html: str
    bach_first: tuple[bool, ...]

    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return len(self.bach_first)

    def _repr_html_(self) -> str:
        return self.html

    def score(self, answers: str) -> str:
        """The page's verdict for a notebook reader's picks, computed in Python.

        The book's page scores the quiz in the browser (``verdict`` in
        ``_static/b2b-listening.js``); a notebook (Colab) has no such script, so its reader types
        the picks and this method says the same sentence as the page.

        Parameters
        ----------
        answers : str
            One letter per pair, in order: ``"A"`` or ``"B"``, the clip picked as Bach (case,
            spaces and commas are ignored), e.g. ``"ABBA BAAB AB"`` for ten pairs.

        Returns
        -------
        str
            The score, a coin's chance of doing at least as well (:func:`p_at_least`) and each
            pair's answer; or, when ``answers`` is empty or malformed, what to type.
        """
        picks = re.sub(r"[\s,;]", "", str(answers)).upper()
        n = self.n_pairs
        if not picks or len(picks) != n or set(picks) - {"A", "B"}:
            got = f"got {len(picks)} letter(s) {picks!r}" if picks else "nothing yet"
            return (f"Type one letter per pair, A or B (the clip you think is Bach), {n} in all, in the "
                    f"order of the pairs: e.g. {'AB' * (n // 2) + 'A' * (n % 2)!r} ({got}).")
        truth = ["A" if first else "B" for first in self.bach_first]
        right = sum(p == t for p, t in zip(picks, truth))
        p = p_at_least(right, n)
        shown = "less than 0.1%" if 100 * p < 0.1 else f"{100 * p:.1f}%"
        text = (f"You picked Bach in {right} of {n} pairs. A coin picks Bach in {n / 2:g} of {n} on average, "
                f"and does at least as well as you ({right} or more of {n}) with probability {shown}.")
        text += (" A coin rarely does that well (at most 1 time in 20): your ears tell Bach from this generator."
                 if p <= 0.05 else
                 " A coin does that well often enough that this score alone does not show that you can tell "
                 "them apart.")
        return text + " Bach was clip " + " ".join(f"{i + 1}:{t}" for i, t in enumerate(truth)) + "."


def answer_key(html: str) -> list[bool]:
    """Decode a quiz page's answers: per pair in page order, whether its first clip is Bach.

    Parameters
    ----------
    html : str
        A page (or the markup of :class:`ListeningQuiz`) holding one quiz.

    Returns
    -------
    list of bool
        One entry per ``data-b2b-key`` attribute, in the order of the page.
    """
    return [key_hash(int(k)) & 1 == 0 for k in _KEY.findall(html)]


def _order(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` bool, True where Bach comes first: ``n // 2`` of them (one more by a coin when
    ``n`` is odd), in an order drawn from ``rng``."""
    first = np.arange(n) < n // 2
    if n % 2:
        first[-1] = bool(rng.integers(2))
    return rng.permutation(first)


def _nonce(bach_first: bool, rng: np.random.Generator) -> int:
    """A random 32-bit number whose :func:`key_hash` parity encodes ``bach_first`` (0: first)."""
    while True:
        k = int(rng.integers(0, 2**32))
        if (key_hash(k) & 1 == 0) == bach_first:
            return k


def _track_indices(tracks: Any) -> tuple[int, ...] | None:
    """The sorted track indices that ``tracks`` names (``None``: every track); see :func:`listening_quiz`."""
    if tracks is None:
        return None
    items = [tracks] if isinstance(tracks, (str, int, np.integer)) else tracks
    try:
        items = list(items)
    except TypeError:
        items = None
    names = [t.name for t in TRACKS]
    out = set()
    for t in items or [None]:
        if isinstance(t, str) and t in names:
            out.add(names.index(t))
        elif isinstance(t, (int, np.integer)) and not isinstance(t, bool) and 0 <= t < N_TRACKS:
            out.add(int(t))
        else:
            raise ValueError(f"tracks: expected None, or one or more LPD-17 track names or indices 0 to "
                             f"{N_TRACKS - 1} (such as 'Ensemble' or 7), got {tracks!r}")
    return tuple(sorted(out))


def _clip(label: str, src: str) -> str:
    return (f'<div class="b2b-quiz-clip"><span class="b2b-quiz-label">{label}</span>'
            f'<audio controls preload="metadata" src="{src}"></audio></div>')


def listening_quiz(
    real: Any,
    generated: Any,
    *,
    seed: int = 0,
    threshold: float = 0.5,
    tempo: float = 120.0,
    sample_rate: int = 16000,
    format: str = "auto",
    backend: str = "auto",
    tracks: Any = None,
) -> ListeningQuiz:
    """Build the "Which one is Bach?" quiz: pair ``i`` plays ``real[i]`` and ``generated[i]``.

    Parameters
    ----------
    real, generated : array-like
        ``(n, 17, 64, 72)`` each (numpy or torch; bool, or probabilities in [0, 1] binarized at
        ``threshold``), ``1 <= n <=`` :data:`MAX_PAIRS`. Every window must hold a note: a
        silent clip would give its pair away.
    seed : int
        Seed (>= 0) of the order within the pairs and of the encoded answers; the same seed and
        windows give the same page, byte for byte.
    threshold : float
        Values ``>= threshold`` are notes, strictly between 0 and 1 (the generator's own calibrated threshold).
    tempo : float
        Beats per minute: a clip lasts ``960 / tempo`` seconds plus :data:`b2b.music.audio.TAIL` (a
        window that sounds to its end renders a little longer: every clip is padded with silence
        to the longest, so no length tells real from generated).
    sample_rate : int
        Samples per second of the clips.
    format : {"auto", "wav", "mp3"}
        Audio file format (:func:`b2b.music.audio.encode`); MP3 is about ten times smaller.
    backend : {"auto", "soundfont", "numpy"}
        Synthesizer (:func:`b2b.music.audio.render`).
    tracks : None, str, int or sequence of them
        The tracks the clips play, by LPD-17 name (``"Ensemble"``) or index (7); ``None``: every
        track. The other tracks of both windows are silenced before rendering, so a quiz can be
        held on one track when the generator gives itself away by its instruments alone (chapter 7
        plays the chorales' busiest track). Every window must hold a note on these tracks.

    Returns
    -------
    ListeningQuiz
        The markup (clips embedded) and the answer key.

    Raises
    ------
    ValueError
        A one-line message naming the argument: wrong shapes, different numbers of windows, too
        many pairs, a bad seed, an unknown track, a window without notes (on the chosen tracks).
    """
    threshold = check_threshold(threshold, "threshold", text=False)
    real_w = binarize(real, threshold, name="real")
    gen_w = binarize(generated, threshold, name="generated")
    keep = _track_indices(tracks)
    if keep is not None:
        drop = np.ones(N_TRACKS, bool)
        drop[list(keep)] = False
        real_w, gen_w = real_w.copy(), gen_w.copy()
        real_w[:, drop] = False
        gen_w[:, drop] = False
    if len(real_w) != len(gen_w):
        raise ValueError(f"real, generated: expected as many real as generated windows, got {len(real_w)} and {len(gen_w)}")
    n = len(real_w)
    if not 1 <= n <= MAX_PAIRS:
        raise ValueError(f"real, generated: expected 1 to {MAX_PAIRS} pairs, got {n}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    tempo = check_tempo(tempo)
    fmt = resolve_format(format)
    for name, ws in (("real", real_w), ("generated", gen_w)):
        silent = [i for i, w in enumerate(ws) if not w.any()]
        if silent:
            where = "" if keep is None else " on track" + ("s " if len(keep) > 1 else " ") + ", ".join(
                TRACKS[k].name for k in keep)
            raise ValueError(f"{name}: window {silent[0]} has no note at threshold {threshold:g}{where}; "
                             "a silent clip would give its pair away")

    # every clip as long as the longest: a window that sounds up to its last step renders a little
    # longer than one that falls silent before it, and a length must not tell real from generated
    waves = [[render(w, sample_rate=sample_rate, tempo=tempo, backend=backend) for w in ws] for ws in (real_w, gen_w)]
    length = max(len(w) for ws in waves for w in ws)

    def src(wave: np.ndarray) -> str:
        padded = np.pad(wave, (0, length - len(wave)))
        data = base64.b64encode(encode(padded, sample_rate, fmt)).decode("ascii")
        return f"data:{AUDIO_FORMATS[fmt]};base64,{data}"

    rng = np.random.default_rng(int(seed))
    first = [bool(b) for b in _order(n, rng)]
    pairs = []
    for i, bach_first in enumerate(first):
        clips = [src(waves[0][i]), src(waves[1][i])]
        if not bach_first:
            clips.reverse()
        pairs.append(
            f'<li class="b2b-quiz-pair" data-b2b-key="{_nonce(bach_first, rng)}">'
            + "".join(_clip(label, c) for label, c in zip("AB", clips)) + "</li>")
    note = html_lib.escape(
        "Listen to both clips of each pair and pick the one you think is Bach. The book's web page "
        "keeps the score; in a notebook, score your picks with the quiz's "
        "score() method, e.g. quiz.score(\"ABBA...\"), one letter per pair.")
    markup = (f'<div class="b2b-quiz" data-b2b-pairs="{n}">'
              f'<p class="b2b-quiz-nojs">{note}</p>'
              f'<ol class="b2b-quiz-pairs">{"".join(pairs)}</ol></div>')
    return ListeningQuiz(html=markup, bach_first=tuple(first))
