"""Issue 25: a window store's files are trusted no further than they can hold (b2b.datasets.store)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from b2b.music.data import DataError
from b2b.datasets.store import WindowDataset, write_store


def small_store(path: Path) -> Path:
    """Two songs: 64 steps with tracks 0 and 5, 80 steps with track 1 (64*2 + 80 = 208 bit rows)."""
    a = np.zeros((17, 64, 72), bool)
    a[0, ::4, 10] = a[5, ::2, 30] = True
    b = np.zeros((17, 80, 72), bool)
    b[1, ::3, 40] = True
    return write_store(path, [("a", a), ("b", b)], {"source": "test"}, min_onsets=1, min_active_bars=1)


def replace_member(npz: Path, key: str, header_shape: tuple, payload: bytes, dtype: str = "|u1") -> None:
    """Rewrite ``key.npy`` in ``npz`` with a header declaring ``header_shape`` and ``payload`` as data."""
    with zipfile.ZipFile(npz) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": header_shape})
    members[f"{key}.npy"] = buf.getvalue() + payload
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_store_reads_and_its_bit_rows_are_what_its_songs_need(tmp_path):
    ds = WindowDataset(small_store(tmp_path / "s"))
    assert ds._bits.shape == (64 * 2 + 80, 9)


def test_an_array_declaring_more_than_its_member_can_hold_is_refused_before_allocation(tmp_path, monkeypatch):
    path = small_store(tmp_path / "s")
    replace_member(path / "store.npz", "bits", (250_000_000, 9), bytes(1_000_000))  # 2.25 GB declared
    calls = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda f, **k: calls.append(1) or real(f, **k))
    with pytest.raises(DataError, match=r"^\S+store.npz: array 'bits' declares shape \(250000000, 9\) of uint8 "
                                        r"\(2,250,000,000 bytes\)"):  # one message, not wrapped in another
        WindowDataset(path)
    assert calls == []  # nothing was read into memory


def test_bits_with_other_rows_than_the_songs_need_are_refused(tmp_path):
    path = small_store(tmp_path / "s")
    replace_member(path / "store.npz", "bits", (209, 9), bytes(209 * 9))  # one row too many
    with pytest.raises(DataError, match="bits declares shape \\(209, 9\\), but its songs' tracks need 208 rows"):
        WindowDataset(path)


def test_song_arrays_must_match_meta(tmp_path):
    path = small_store(tmp_path / "s")
    replace_member(path / "store.npz", "song_steps", (3,), np.array([64, 80, 16], "<i8").tobytes(), "<i8")
    with pytest.raises(DataError, match=r"song_steps declares shape \(3,\), expected 2 rows"):
        WindowDataset(path)


@pytest.mark.parametrize("text,message", [
    ("[" * 50_000 + "]" * 50_000, "nested 50000 levels deep"),
    ('{"format": "b2b-window-store", "version": 1, "sample_shape": [17, 64, 72], "songs": "x"}',
     "'songs' is str, expected a list"),
    ("[1]", "holds an array, expected an object"),
])
def test_hostile_meta_json_is_one_data_error(tmp_path, text, message):
    path = small_store(tmp_path / "s")
    (path / "meta.json").write_text(text)
    with pytest.raises(DataError, match="meta.json") as e:
        WindowDataset(path)
    assert message in str(e.value) and "\n" not in str(e.value)
