"""The embedded dataset: Bach chorales from the corpus bundled with music21 (``b2b data bach``).

Works offline: music21 ships 371 chorale entries (350 unique files, listed by
``music21.corpus.chorales.Iterator``). Each chorale is parsed with music21 (in ``workers``
processes, using music21's own parse cache) and its notes are placed straight on the window grid
with :func:`b2b.music.data.notes_to_roll` (no MIDI round trip), so the rules of :mod:`b2b.music.data`
(rounding, repeated notes, pitch folding, whole bars) apply unchanged.

Rules
-----
Time signature
    Only pieces whose every time signature is 4/4 are kept (a piece without one would be taken
    as 4/4; the corpus has none); the others are skipped and counted (3/4, 3/2, 12/8, or mixed
    meters).
Bars
    Bars are aligned to the real downbeat: the first full (4-beat) measure starts a bar, and a
    pickup measure is kept at the end of an otherwise silent first bar. A piece in which a
    later full measure does not fall on that bar grid (a partial measure in the middle, e.g. at
    a repeat sign) is skipped as "irregular bar lines".
Notes
    Tied notes are one note; chords give one note per pitch; rests are silence; grace notes
    (no duration) are dropped. Repeats are not expanded (the score is read as written).
Track mapping
    A part goes to the LPD-17 family of the instrument that plays it, found from the first
    keyword in its instrument and part names (:data:`PART_KEYWORDS`): the sung voices
    (Soprano, Alto, Tenor, Bass, also when doubled, e.g. "Bass Continuo") → Ensemble (the family
    of General MIDI "Choir Aahs"); violin, viola, cello → Strings; timpani → Strings (General
    MIDI program 47 lies in the strings family, as in LPD); continuo and organ → Organ;
    harpsichord, piano → Piano; oboes, bassoon → Reed; flutes, recorders → Pipe; horns,
    trumpets, cornets, trombones → Brass. Unnamed parts (three chorales encoded from Humdrum
    spines) are the four voices → Ensemble. Parts of one family are merged into one track.
Windows
    One-bar hop (``hop_bars=1``) and the window rule of :mod:`b2b.music.data`. Optional transposition
    augmentation (``transpose=k``: each piece also transposed by −k … +k semitones, k at most
    :data:`MAX_TRANSPOSE` = 6, which already reaches every key) is off by default.
Building
    The first build parses every chorale (about a minute on two cores) and shows a progress bar
    on stderr (also when :func:`b2b.datasets.catalog.open_dataset` builds it from a notebook). One process
    builds at a time: the data root is locked (``<root>/.bach.lock``; another build waits), and
    temporaries left by a killed build are removed.
"""

from __future__ import annotations

import argparse
import errno
import multiprocessing
import os
import re
import shutil
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from b2b.music import data
from b2b.datasets import store
from b2b.files.atomic import FolderLock, claim_output, die_with_parent, read_json, write_text

__all__ = ["PART_KEYWORDS", "MAX_TRANSPOSE", "chorale_names", "part_track", "chorale_events", "chorale_roll", "build",
           "summary", "add_arguments", "run"]

# keyword (start of a word, lower case) -> LPD-17 track name; the earliest keyword in
# "<instrument name> <part name>" decides.
PART_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("soprano", "Ensemble"), ("alto", "Ensemble"), ("tenor", "Ensemble"), ("bass", "Ensemble"),
    ("choir", "Ensemble"), ("chorus", "Ensemble"), ("voice", "Ensemble"), ("coro", "Ensemble"),
    ("violin", "Strings"), ("viloin", "Strings"), ("viola", "Strings"), ("violoncell", "Strings"),
    ("cello", "Strings"), ("violone", "Strings"), ("timpani", "Strings"),
    ("organ", "Organ"), ("continuo", "Organ"),
    ("harpsichord", "Piano"), ("cembalo", "Piano"), ("piano", "Piano"),
    ("oboe", "Reed"), ("bassoon", "Reed"), ("fagott", "Reed"),
    ("flute", "Pipe"), ("flauto", "Pipe"), ("recorder", "Pipe"),
    ("horn", "Brass"), ("corno", "Brass"), ("trumpet", "Brass"), ("tromba", "Brass"),
    ("clarino", "Brass"), ("cornet", "Brass"), ("trombone", "Brass"),
)
_TRACK_INDEX = {t.name: i for i, t in enumerate(data.TRACKS)}
_KEYWORD_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k, _ in PART_KEYWORDS) + r")")
_KEYWORD_TRACK = dict(PART_KEYWORDS)
SOURCE = "music21 corpus: Bach chorales (music21.corpus.chorales.Iterator, unique files)"
# Transposition augmentation by -k..+k semitones: k = 6 already puts every piece in all 12 keys
# (the tritone both ways); more only repeats keys an octave apart and multiplies the build time
# and the store (k = 100 took 6 minutes and stored 646k windows).
MAX_TRANSPOSE = 6


def chorale_names() -> list[str]:
    """Corpus names (e.g. ``'bach/bwv269'``) of the unique chorales, in the iterator's order."""
    from music21.corpus import chorales

    return list(dict.fromkeys(chorales.Iterator(returnType="filename")))


def part_track(part_name: str | None, instrument_name: str | None = None,
               midi_program: int | None = None) -> tuple[int, str]:
    """LPD-17 track index for a chorale part, and the reason (see the module's mapping rule)."""
    text = " ".join(x for x in (instrument_name, part_name) if x).lower()
    m = _KEYWORD_RE.search(text)
    if m:
        return _TRACK_INDEX[_KEYWORD_TRACK[m.group(1)]], f"keyword {m.group(1)!r}"
    if midi_program is not None:
        return data.track_family(int(midi_program), False), f"General MIDI program {midi_program}"
    return _TRACK_INDEX["Ensemble"], "unnamed part: a chorale voice"


def chorale_events(score: Any) -> dict:
    """Note events of a parsed chorale on the window grid, or the reason to skip it.

    Returns
    -------
    dict
        ``skip``: reason or None; ``track``, ``pitch`` int arrays (N,); ``onset``, ``offset``
        float arrays (N,) in steps at 4 per beat, step 0 a bar line; ``n_steps``;
        ``pickup_beats``; ``parts``: list of ``[part name, track name, reason]``.
    """
    from music21 import meter

    tss = sorted({ts.ratioString for ts in score.recurse().getElementsByClass(meter.TimeSignature)})
    if tss and tss != ["4/4"]:
        return {"skip": "time signature " + "+".join(tss)}
    parts = list(score.parts)
    if not parts:
        return {"skip": "no parts"}
    measures = [(float(m.offset), float(m.duration.quarterLength))
                for m in parts[0].getElementsByClass("Measure")]
    full = [o for o, d in measures if d == data.BEATS_PER_BAR]
    if not full:
        return {"skip": "no full 4/4 measure"}
    shift_q = (-full[0]) % data.BEATS_PER_BAR
    if any((o + shift_q) % data.BEATS_PER_BAR for o in full):
        return {"skip": "irregular bar lines"}
    track, pitch, onset, offset, part_info = [], [], [], [], []
    for part in parts:
        inst = part.getInstrument(returnDefault=False)
        k, why = part_track(part.partName, getattr(inst, "instrumentName", None),
                            getattr(inst, "midiProgram", None))
        part_info.append([part.partName or "", data.TRACKS[k].name, why])
        open_ties: dict[int, int] = {}  # midi pitch -> index of the note a tie continues
        for el in part.flatten().notes:
            q = float(el.quarterLength)
            if q <= 0:  # grace note
                continue
            on = float(el.offset)
            for n in (el.notes if el.isChord else (el,)):
                if not hasattr(n, "pitch"):
                    continue
                midi = int(n.pitch.midi)
                tie = n.tie if n.tie is not None else (el.tie if el.isChord else None)
                kind = tie.type if tie is not None else None
                j = open_ties.get(midi)
                if kind in ("stop", "continue") and j is not None and abs(offset[j] - on) < 1e-6:
                    offset[j] = on + q
                else:
                    j = len(onset)
                    track.append(k), pitch.append(midi), onset.append(on), offset.append(on + q)
                if kind in ("start", "continue"):
                    open_ties[midi] = j
                else:
                    open_ties.pop(midi, None)
    spb = data.STEPS_PER_BEAT
    end = max([float(score.highestTime)] + offset) if offset else float(score.highestTime)
    return {
        "skip": None,
        "track": np.asarray(track, np.int64),
        "pitch": np.asarray(pitch, np.int64),
        "onset": (np.asarray(onset, float) + shift_q) * spb,
        "offset": (np.asarray(offset, float) + shift_q) * spb,
        "n_steps": int(round((end + shift_q) * spb)),
        "pickup_beats": float((data.BEATS_PER_BAR - shift_q) % data.BEATS_PER_BAR),
        "parts": part_info,
    }


def chorale_roll(events: dict, transpose: int = 0) -> np.ndarray:
    """Roll ``(17, T, 72)`` bool of :func:`chorale_events` output, transposed by ``transpose``."""
    return data.notes_to_roll(events["track"], events["pitch"] + int(transpose), events["onset"],
                              events["offset"], False, n_steps=events["n_steps"])


def _convert(args: tuple[str, bool]) -> tuple[str, dict]:
    """Worker: parse one chorale and return its events (or why it is skipped)."""
    name, use_cache = args
    from music21 import corpus

    try:
        score = corpus.parse(name, forceSource=not use_cache)
    except Exception as e:  # a corpus file music21 cannot read
        return name, {"skip": f"unreadable ({type(e).__name__})"}
    ev = chorale_events(score)
    md = score.metadata
    ev["title"] = (md.title if md is not None and md.title else "") or ""
    return name, ev


def _song_id(name: str) -> str:
    return name.split("/")[-1]


def _bwv(song_id: str) -> str:
    return song_id[3:] if song_id.startswith("bwv") else song_id


def _options(names: Sequence[str] | None, transpose: int, hop_bars: int) -> dict:
    return {"transpose": int(transpose), "hop_bars": int(hop_bars),
            "names": None if names is None else list(names)}


def build(root: str | os.PathLike | None = None, workers: int = 2, force: bool = False, *,
          transpose: int = 0, hop_bars: int = 1, names: Sequence[str] | None = None,
          use_cache: bool = True, verbose: bool = False, progress: bool = True) -> Path:
    """Build the Bach chorale store into ``<root>/bach`` (once) and return its path.

    Parameters
    ----------
    root : path, optional
        Data root (default :func:`b2b.datasets.store.default_root`).
    workers : int
        Processes parsing chorales (1: parse in this process); at most one per chorale and one
        per CPU core are started.
    force : bool
        Rebuild even if a store built with the same options exists; the old store stays in place,
        byte for byte, until the new one is complete and swapped in, so an interrupted or failed
        rebuild leaves the old store.
    transpose : int
        Augmentation: also store every piece transposed by −transpose … +transpose semitones
        (song ids ``bwv…+k``), 0 … :data:`MAX_TRANSPOSE`. 0 (default): no augmentation.
    hop_bars : int
        Window hop in bars (default 1).
    names : list of str, optional
        Corpus names to use instead of all chorales (for tests and quick looks).
    use_cache : bool
        Let music21 use its parse cache (False: parse every file from source).
    verbose : bool
        Print what was done (cached or built, times) on stdout.
    progress : bool
        Show a progress bar over the chorales on stderr while building.

    Returns
    -------
    Path
        ``<root>/bach``, a store readable by :class:`b2b.datasets.store.WindowDataset`.
    """
    if isinstance(transpose, bool) or not isinstance(transpose, (int, np.integer)) \
            or not 0 <= int(transpose) <= MAX_TRANSPOSE:
        raise ValueError(f"transpose (--transpose) must be 0..{MAX_TRANSPOSE} semitones "
                         f"({MAX_TRANSPOSE} already reaches all 12 keys), got {transpose!r}")
    root = Path(root).expanduser() if root is not None else store.default_root()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the data root (--root) exists and is not a folder", str(root))
    path = root / "bach"
    opts = _options(names, transpose, hop_bars)
    if not force and _built_with(path, opts):
        _tidy(root)
        if verbose:
            print(f"{path}: already built (use --force to rebuild)")
        return path
    # one build at a time: a second one waits, then finds the store built
    waited = []

    def on_wait(holder: str) -> None:
        waited.append(holder)
        print(f"b2b: waiting for another build of {path} to finish ({holder})", file=sys.stderr)

    with _claim(root, wait=True, on_wait=on_wait):
        if (waited or not force) and _built_with(path, opts):  # another build, or a swap put back
            return path
        # the old store stays until the new one is complete (store.write_store swaps them)
        return _build(path, opts, workers, transpose, hop_bars, names, use_cache, verbose, progress)


#: Temporary names of a store being written (``.bach.<hex>.tmp``) or replaced (``.old``).
_LEFTOVERS = r"\.bach\.[0-9a-f]{8}\.(tmp|old)"


def _tidy(root: Path) -> None:
    """Remove what killed builds left in ``root`` if no build holds its lock (else leave it)."""
    try:
        lock = _claim(root)
    except OSError:  # another build runs (its temporaries are alive) or the root is read-only
        return
    lock.release()


def _claim(root: Path, wait: bool = False, on_wait: Any = None) -> FolderLock:
    """Lock ``<root>/bach`` for this process (:func:`b2b.files.atomic.claim_output`, the lock
    ``<root>/.bach.lock``): a store whose swap was killed between its two renames is put back,
    and what killed builds left is removed."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the data root (--root) exists and is not a folder", str(root))
    return claim_output(root, f"the Bach store {root / 'bach'}", name=".bach.lock", pattern=_LEFTOVERS,
                        wait=wait, on_wait=on_wait, restore=[root / "bach"])


def shipped_store() -> Path | None:
    """The prebuilt store that ships with b2b (``data/bach``, built by ``b2b data bach`` with the
    default options), or None if this installation has none."""
    try:
        path = data.asset("bach/meta.json").parent
    except FileNotFoundError:
        return None
    return path if store.is_store(path) else None


def install(root: str | os.PathLike | None = None, workers: int = 2) -> Path:
    """Make ``<root>/bach`` exist: copy the prebuilt store if b2b ships one, else :func:`build`.

    The copy takes a moment where building parses 350 chorales (half a minute to a few minutes
    on 2 cores); ``b2b data bach --force`` rebuilds from the corpus at any time, and a test
    checks that the shipped store equals a fresh build. Returns ``<root>/bach``.
    """
    root = Path(root).expanduser() if root is not None else store.default_root()
    path = root / "bach"
    if store.is_store(path):
        return path
    shipped = shipped_store()
    if shipped is None:
        return build(root=root, workers=workers)
    with _claim(root, wait=True):  # creates the root; one line if it is a file
        if not store.is_store(path):
            tmp = root / f".bach.{uuid.uuid4().hex[:8]}.tmp"
            try:
                shutil.copytree(shipped, tmp)
                os.replace(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(f"b2b: installed the prebuilt Bach store in {path} (built from the music21 corpus by "
                  "`b2b data bach`; rebuild it with `b2b data bach --force`)", file=sys.stderr)
    return path


def _built_with(path: Path, opts: dict) -> bool:
    """Whether ``path`` holds a readable store built with options ``opts``."""
    if not store.is_store(path):
        return False
    try:
        return (store.WindowDataset(path).meta.get("build") or {}).get("options") == opts
    except data.DataError:
        return False  # a broken store is rebuilt


def _build(path: Path, opts: dict, workers: int, transpose: int, hop_bars: int, names: Sequence[str] | None,
           use_cache: bool, verbose: bool, progress: bool) -> Path:
    """The body of :func:`build`, run while holding the lock."""
    import music21

    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    todo = list(names) if names is not None else chorale_names()
    jobs = [(n, bool(use_cache)) for n in todo]
    workers = max(1, min(int(workers), len(jobs), os.cpu_count() or 1))  # bounded by the work and the machine
    bar = None
    if progress:
        from tqdm.auto import tqdm

        print(f"b2b: building the Bach chorale dataset in {path} (once; about a minute for all chorales)",
              file=sys.stderr)
        bar = tqdm(total=len(jobs), desc="parsing chorales", unit="chorale", file=sys.stderr,
                   mininterval=1.0, dynamic_ncols=True)
    results = {}
    try:
        if int(workers) <= 1 or len(jobs) <= 1:
            for job in jobs:
                name, ev = _convert(job)
                results[name] = ev
                if bar is not None:
                    bar.update(1)
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            ctx = multiprocessing.get_context(method)
            pool = ctx.Pool(int(workers), initializer=die_with_parent,
                            initargs=(os.getpid() if method == "fork" else None,))
            try:
                for name, ev in pool.imap_unordered(_convert, jobs, chunksize=2):
                    results[name] = ev
                    if bar is not None:
                        bar.update(1)
                pool.close()
            except BaseException:
                pool.terminate()
                raise
            finally:
                pool.join()
    finally:
        if bar is not None:
            bar.close()
    t_parse = time.perf_counter() - t0

    pieces, skipped, songs, mapping = {}, {}, [], Counter()
    for name in todo:
        ev = results[name]
        sid = _song_id(name)
        if ev["skip"]:
            skipped[sid] = ev["skip"]
            continue
        pieces[sid] = {"corpus_path": name, "bwv": _bwv(sid), "title": ev["title"],
                       "pickup_beats": ev["pickup_beats"], "parts": ev["parts"],
                       "notes": int(len(ev["pitch"]))}
        for part_name, track_name, why in ev["parts"]:
            mapping[(part_name, track_name, why)] += 1
        for k in range(-int(transpose), int(transpose) + 1):
            songs.append((sid if k == 0 else f"{sid}{k:+d}", chorale_roll(ev, k)))
    meta = {
        "source": SOURCE,
        "music21_version": music21.__version__,
        "licence": "music21 corpus (BSD); the chorales are public domain",
        "part_mapping": [{"part": p, "track": t, "rule": w, "pieces": c}
                         for (p, t, w), c in sorted(mapping.items())],
        "pieces": pieces,
        "skipped": skipped,
        "build": {"options": opts, "workers": int(workers), "use_cache": bool(use_cache),
                  "parse_seconds": round(t_parse, 2)},
    }
    store.write_store(path, songs, meta, hop_bars=hop_bars)
    meta["build"]["seconds"] = round(time.perf_counter() - t0, 2)
    cpu = _cpu_seconds()
    if cpu is not None and cpu0 is not None:
        meta["build"]["cpu_seconds"] = round(cpu - cpu0, 2)
    _patch_meta(path, meta["build"])
    if verbose:
        cpu = meta["build"].get("cpu_seconds")
        print(f"built {path} in {meta['build']['seconds']:.1f} s (parsing {t_parse:.1f} s with "
              f"{workers} worker(s)" + (f"; {cpu:.1f} CPU-seconds in all)" if cpu is not None else ")"))
    return path


def _cpu_seconds() -> float | None:
    """CPU time (user + system) of this process and its finished children, if known."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _patch_meta(path: Path, build_info: dict) -> None:
    """Record the total build time in ``meta.json`` (atomically)."""
    import json

    f = path / "meta.json"
    meta = read_json(f)
    meta["build"] = build_info
    write_text(f, json.dumps(meta, indent=1))


def summary(dataset: "store.WindowDataset") -> str:
    """A few lines describing a chorale store: pieces, skips, windows, tracks, density."""
    meta = dataset.meta
    pieces, skipped = meta.get("pieces") or {}, meta.get("skipped") or {}
    lines = [f"{dataset.path}: {len(pieces)} pieces, {len(dataset.songs)} songs, {len(dataset)} windows "
             f"({meta['window_rule']['rule']})"]
    if skipped:
        why = Counter(skipped.values())
        lines.append(f"skipped {len(skipped)} pieces: " + ", ".join(f"{w} ({c})" for w, c in why.most_common()))
    active = np.zeros(data.N_TRACKS, np.int64)
    sounding = onsets = 0
    songs = dataset.index[:, 0]
    for s in np.unique(songs):
        roll = dataset.song_roll(int(s))
        prev = np.zeros_like(roll)
        prev[:, 1:] = roll[:, :-1]
        for start in dataset.index[songs == s, 1]:
            w = roll[:, start:start + data.N_STEPS]
            active += w.any(axis=(1, 2))
            sounding += int(w.sum())
            onsets += int((w & ~prev[:, start:start + data.N_STEPS]).sum() + (w[:, 0] & prev[:, start, :]).sum())
    n = max(len(dataset), 1)
    lines.append("active tracks (windows): " + ", ".join(
        f"{data.TRACKS[k].name} {int(active[k])}" for k in np.flatnonzero(active)))
    lines.append(f"note density: {sounding / (n * data.N_STEPS):.2f} cells sounding per step (all tracks), "
                 f"{onsets / (n * data.N_BARS):.1f} onsets per bar")
    b = meta.get("build") or {}
    if b.get("seconds") is not None:
        lines.append(f"built in {b['seconds']:.1f} s with {b.get('workers')} worker(s)"
                     + (f", {b['cpu_seconds']:.1f} CPU-seconds" if b.get("cpu_seconds") is not None else ""))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``b2b data bach``."""
    parser.add_argument("--root", type=Path, default=None,
                        help="data root (default: $B2B_DATA or ~/b2b-data); the store goes to ROOT/bach")
    parser.add_argument("--workers", type=int, default=2, help="parsing processes (default: 2)")
    parser.add_argument("--force", action="store_true", help="rebuild even if already built")
    parser.add_argument("--transpose", type=int, default=0, metavar="K",
                        help=f"augment with transpositions by -K..+K semitones, K in 0..{MAX_TRANSPOSE} "
                             f"({MAX_TRANSPOSE} already reaches all 12 keys; default: 0, none)")
    parser.add_argument("--no-cache", dest="use_cache", action="store_false",
                        help="parse every chorale from source instead of music21's parse cache")


def run(args: argparse.Namespace) -> int:
    """``b2b data bach``: build (if needed) and print the summary."""
    if not 1 <= args.workers <= 64:
        raise ValueError(f"--workers must be 1..64, got {args.workers}")
    if not 0 <= args.transpose <= MAX_TRANSPOSE:
        raise ValueError(f"--transpose must be 0..{MAX_TRANSPOSE} semitones ({MAX_TRANSPOSE} already reaches "
                         f"all 12 keys), got {args.transpose}")
    t0 = time.perf_counter()
    path = build(root=args.root, workers=args.workers, force=args.force, transpose=args.transpose,
                 use_cache=args.use_cache, verbose=True)
    print(summary(store.WindowDataset(path)))
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
