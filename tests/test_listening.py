"""The listening quiz of chapter 7 (b2b.evaluation.listening, ``_static/b2b-listening.js``).

The page's JavaScript is checked twice, like the in-page generator's (tests/test_web.py): its
twins of :func:`b2b.evaluation.listening.key_hash` and :func:`b2b.evaluation.listening.p_at_least` under Node.js, and
the whole quiz in headless Chromium (``scripts/check_html_quiz.py --harness``: real mouse clicks
through every pair, the score and the coin's chance). Each is skipped where its program is
missing; ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from b2b.music import audio
from b2b.evaluation import listening

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "_static" / "b2b-listening.js"
SRC = re.compile(r'src="data:([^;]+);base64,([^"]+)"')


def _lowbias32_numpy(x: int) -> int:
    """lowbias32 written independently with numpy uint64 arithmetic."""
    m = np.uint64(0xFFFFFFFF)
    x = np.uint64(x)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & m
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & m
    return int(x ^ (x >> np.uint64(16)))


def _windows(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n asymmetric pairs: real i is a piano line starting at pitch row 20 + i (bool); generated i
    a bass note of 3 + i steps at row 40 - i, probability 0.7, over a bass track at 0.3 (off at 0.5)."""
    real = np.zeros((n, 17, 64, 72), bool)
    gen = np.zeros((n, 17, 64, 72), np.float32)
    gen[:, 5] = 0.3
    for i in range(n):
        real[i, 1, 2 * i : 2 * i + 6, 20 + i] = True
        real[i, 1, 30:34, 25] = True
        gen[i, 5, 10 : 13 + i, 40 - i] = 0.7
    return real, gen


def _clips(html: str) -> list[bytes]:
    return [base64.b64decode(data) for _, data in SRC.findall(html)]


def test_key_hash_is_lowbias32():
    for x in (0, 1, 7, 778955830, 0xDEADBEEF, 2**32 - 1):
        assert listening.key_hash(x) == _lowbias32_numpy(x)
    assert listening.key_hash(0) == 0  # lowbias32 fixes 0
    assert len({listening.key_hash(x) & 1 for x in range(64)}) == 2


def test_p_at_least_by_hand():
    assert listening.p_at_least(7, 10) == (120 + 45 + 10 + 1) / 1024  # C(10,7..10) / 2^10
    assert listening.p_at_least(3, 5) == 0.5  # (10 + 5 + 1) / 32: symmetric
    assert listening.p_at_least(0, 4) == 1.0
    assert listening.p_at_least(20, 20) == 2.0**-20
    from scipy.stats import binom

    for n in (1, 2, 9, 50):
        for k in range(n + 1):
            assert listening.p_at_least(k, n) == pytest.approx(binom.sf(k - 1, n, 0.5), rel=1e-12)
    assert listening.p_at_least(2, 2, 0.7) == pytest.approx(0.49)  # both right
    assert listening.p_at_least(1, 2, 0.7) == pytest.approx(1 - 0.3 * 0.3)  # not both wrong
    assert listening.p_at_least(3, 4, 0.9) == pytest.approx(binom.sf(2, 4, 0.9), rel=1e-12)
    assert listening.p_at_least(1, 3, 0.0) == 0.0 and listening.p_at_least(3, 3, 1.0) == 1.0
    for k, n in ((6, 5), (-1, 5), (1, 0), (True, 5), (1.0, 5)):
        with pytest.raises(ValueError, match="p_at_least: expected integers"):
            listening.p_at_least(k, n)
    for p in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match=r"p_at_least: expected a probability p in \[0, 1\]"):
            listening.p_at_least(1, 2, p)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_page_twins_are_the_python_functions():
    keys = [0, 1, 7, 778955830, 0xDEADBEEF, 2**32 - 1]
    cases = [(k, n) for n in (1, 5, 10, 33, 50) for k in range(n + 1)]
    code = (f"const q = require({json.dumps(str(JS))});"
            f"console.log(JSON.stringify([{json.dumps(keys)}.map(q.hash32), "
            f"{json.dumps(cases)}.map(c => q.pAtLeast(c[0], c[1]))]));")
    hashes, ps = json.loads(subprocess.run(["node", "-e", code], capture_output=True, text=True, check=True).stdout)
    assert hashes == [listening.key_hash(k) for k in keys]
    np.testing.assert_allclose(ps, [listening.p_at_least(k, n) for k, n in cases], rtol=1e-12)


def test_pairs_are_balanced_and_the_order_comes_from_the_seed():
    real, gen = _windows(6)
    orders = {}
    for seed in range(12):
        q = listening.listening_quiz(real, gen, seed=seed, backend="numpy", format="wav")
        assert q.n_pairs == 6 and sum(q.bach_first) == 3  # Bach first in exactly half the pairs
        assert listening.answer_key(q.html) == list(q.bach_first)
        orders[seed] = q.bach_first
    assert len(set(orders.values())) >= 5  # the seed moves the order ...
    again = listening.listening_quiz(real, gen, seed=4, backend="numpy", format="wav")
    assert again.bach_first == orders[4]  # ... and the same seed gives the same page
    assert again.html == listening.listening_quiz(real, gen, seed=4, backend="numpy", format="wav").html
    first_count = [sum(listening.listening_quiz(real[:5], gen[:5], seed=s, backend="numpy", format="wav").bach_first)
                   for s in range(6)]
    assert set(first_count) <= {2, 3}  # odd: half, and the odd pair by a coin


def test_each_pair_plays_its_real_and_its_generated_window_in_the_key_order():
    real, gen = _windows(4)
    real[3, 1, 60:64, 50] = True  # sounds to the end of the window: renders longer than the others
    q = listening.listening_quiz(real, gen, seed=1, backend="numpy", format="wav", tempo=150.0, sample_rate=8000)
    clips = _clips(q.html)
    assert len(clips) == 8

    def wave(w):
        return audio.render(w, sample_rate=8000, tempo=150.0, backend="numpy")

    longest = len(wave(real[3]))
    assert longest > len(wave(real[0])) == int(np.ceil((64 * 60 / 150 / 4 + audio.TAIL) * 8000))
    for i, bach_first in enumerate(q.bach_first):
        want_real, want_gen = (audio.encode(np.pad(wave(w), (0, longest - len(wave(w)))), 8000, "wav")
                               for w in (real[i], gen[i] >= 0.5))
        a, b = clips[2 * i], clips[2 * i + 1]
        assert (a, b) == ((want_real, want_gen) if bach_first else (want_gen, want_real)), i
        assert len(a) == len(b) == 44 + 2 * longest  # every clip as long as the longest: no length leaks


def test_tracks_plays_only_the_chosen_tracks_of_both_clips():
    real, gen = _windows(3)
    real[:, 8, 0:16, 30] = True                    # a Brass note in every real window ...
    gen[:, 1, 20:30, 33] = 0.9                     # ... and a Piano note in every generated one
    gen[2, 8, 40:44, 10] = 0.8                     # generated 2 also plays Brass
    kw = dict(seed=3, backend="numpy", format="wav", sample_rate=8000)

    def wave(w):
        return audio.render(w, sample_rate=8000, backend="numpy")

    def only(w, keep):
        out = np.zeros_like(w, dtype=bool)
        out[keep] = w[keep] >= 0.5
        return out

    for tracks, keep in (("Piano", [1]), (1, [1]), (["Brass", 1], [1, 8]), ((8, "Piano", 1), [1, 8])):
        q = listening.listening_quiz(real, gen, tracks=tracks, **kw)
        assert listening.listening_quiz(real, gen, **kw).bach_first == q.bach_first  # same seed, same order
        clips = _clips(q.html)
        wants = [(wave(only(r, keep)), wave(only(g, keep))) for r, g in zip(real, gen)]
        longest = max(len(w) for pair in wants for w in pair)
        for i, bach_first in enumerate(q.bach_first):
            want_real, want_gen = (audio.encode(np.pad(w, (0, longest - len(w))), 8000, "wav") for w in wants[i])
            assert (clips[2 * i], clips[2 * i + 1]) == ((want_real, want_gen) if bach_first else (want_gen, want_real)), (tracks, i)
    # the whole windows sound different from the Piano track alone
    assert _clips(listening.listening_quiz(real, gen, **kw).html) != _clips(listening.listening_quiz(real, gen, tracks="Piano", **kw).html)
    # the inputs are not changed
    assert real[:, 8].any() and (gen[:, 1] == 0.9).any()


def test_tracks_refuses_unknown_tracks_and_silent_windows():
    real, gen = _windows(3)
    kw = dict(backend="numpy", format="wav")
    for bad in ("Choir", 17, -1, True, [], [1, "Kazoo"], 1.0):
        with pytest.raises(ValueError, match=r"^tracks: expected None, or one or more LPD-17 track names") as e:
            listening.listening_quiz(real, gen, tracks=bad, **kw)
        assert "\n" not in str(e.value)
    # the generated windows play Bass only: on the Piano track they are silent
    with pytest.raises(ValueError, match=r"^generated: window 0 has no note at threshold 0.5 on track Piano;"):
        listening.listening_quiz(real, gen, tracks="Piano", **kw)
    with pytest.raises(ValueError, match=r"^real: window 0 has no note at threshold 0.5 on tracks Drums, Bass;"):
        listening.listening_quiz(real, gen, tracks=["Bass", 0], **kw)


def test_the_answer_is_not_in_the_markup():
    real, gen = _windows(6)
    quizzes = [listening.listening_quiz(real, gen, seed=s, backend="numpy", format="wav") for s in (0, 1, 2)]
    assert len({q.bach_first for q in quizzes}) == 3

    def skeleton(html: str) -> str:
        return re.sub(r'data-b2b-key="\d+"', 'data-b2b-key="K"', SRC.sub('src="CLIP"', html))

    # with clips and keys blanked out, pages of different orders are the same text: nothing else
    # (names, classes, attributes, order of elements) depends on which clip is Bach
    assert len({skeleton(q.html) for q in quizzes}) == 1
    text = skeleton(quizzes[0].html).lower()
    for word in ("real", "generated", "fake", "answer", "correct", ".mp3", ".wav"):
        assert word not in text, word
    pair = re.search(r'<li class="b2b-quiz-pair".*?</li>', text).group(0)
    a, b = re.findall(r'<div class="b2b-quiz-clip">.*?</div>', pair)
    assert a.replace(">a<", ">x<") == b.replace(">b<", ">x<")  # the two clips differ only in their label


def test_bad_input_gets_one_line_errors():
    real, gen = _windows(3)

    def refused(match: str, *args, **kw) -> None:
        with pytest.raises(ValueError, match=match) as e:
            listening.listening_quiz(*args, backend="numpy", format="wav", **kw)
        assert "\n" not in str(e.value)

    refused(r"real, generated: expected as many real as generated windows, got 3 and 2", real, gen[:2])
    refused(r"expected 1 to 50 pairs, got 51", np.repeat(real[:1], 51, 0), np.repeat(gen[:1], 51, 0))
    refused(r"^real: expected windows of shape", real[:, :, :32], gen)
    refused(r"^generated: values in \[0, 1.4\]", real, gen * 2)
    for seed in (-1, 1.5, True, "0"):
        refused(r"^seed: expected a non-negative integer", real, gen, seed=seed)
    for thr in (0, 1, 1.5, float("nan"), True, "0.5"):
        refused(r"^threshold: expected a number strictly between 0 and 1", real, gen, threshold=thr)
    refused(r"^tempo:", real, gen, tempo=1000)
    refused(r"^generated: window 1 has no note at threshold 0.5", real, np.where(np.arange(3)[:, None, None, None] == 1, 0.3, gen))
    refused(r"^generated: window 0 has no note at threshold 0.9", real, gen, threshold=0.9)  # 0.7 < 0.9
    quiet = real.copy()
    quiet[2] = False
    refused(r"^real: window 2 has no note", quiet, gen)


def _chromium() -> str | None:
    from conftest import load_script

    return load_script("check_html_audio").find_chromium()


@pytest.mark.skipif(_chromium() is None, reason="no Chromium (apt-get install -y chromium; .ci/run installs it)")
def test_the_page_scores_a_reader_who_clicks_through_every_pair(tmp_path, capsys):
    from conftest import load_script

    check = load_script("check_html_quiz")
    rc = check.main(["--harness", str(tmp_path / "site"), "--pairs", "6", "--seed", "5"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "You picked Bach in 4 of 6 pairs." in out  # right on pairs 0, 1, 3, 4
    assert "the coin's chance of at least 4 of 6 is p_at_least's 34.375%" in out  # (15 + 6 + 1) / 64


def test_a_notebook_scores_the_quiz_as_the_page_does():
    """ListeningQuiz.score: the page's verdict (verdict() in b2b-listening.js) for typed picks."""
    quiz = listening.ListeningQuiz(html="", bach_first=(True, False, False, True, True, False))
    truth = "ABBAAB"
    all_right = quiz.score(truth.lower())
    assert all_right.startswith("You picked Bach in 6 of 6 pairs. A coin picks Bach in 3 of 6 on average, "
                                "and does at least as well as you (6 or more of 6) with probability 1.6%.")
    assert "rarely does that well" in all_right and all_right.endswith("Bach was clip 1:A 2:B 3:B 4:A 5:A 6:B.")
    # 4 of 6 (pairs 1 and 2 wrong): a coin gets 4 or more with (15 + 6 + 1) / 64 = 34.4%
    four = quiz.score("B, A, B A A B")
    assert "You picked Bach in 4 of 6 pairs" in four and "with probability 34.4%" in four
    assert "does not show that you can tell them apart" in four
    for bad in ("", "ABBA", "ABBAAC"):
        assert quiz.score(bad).startswith("Type one letter per pair, A or B"), bad
