"""The digest index: a remembered digest is used only while its files are unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import onnx
import pytest
from test_ort_support import linear_model

from xdna_ep.ort import digest_index
from xdna_ep.ort.compiled_model import model_digest
from xdna_ep.ort.digest_index import DigestIndex

TICK = 0.05  # longer than the kernel's timestamp granularity


@pytest.fixture
def index(tmp_path, monkeypatch) -> DigestIndex:
    monkeypatch.setattr(digest_index, "RACY_SECONDS", 0.0)  # files here are seconds old
    return DigestIndex(tmp_path / "cache")


class Counting:
    """A digest function that counts its calls (reads the bytes, like the real one)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path) -> tuple[str, list[Path]]:
        self.calls += 1
        return path.read_bytes().hex(), []


def _settle() -> None:
    time.sleep(TICK)


def test_unchanged_file_is_not_read_again(index, tmp_path):
    f = tmp_path / "m.bin"
    f.write_bytes(b"abcd")
    _settle()
    fn = Counting()
    assert index.digest("k", f, fn) == index.digest("k", f, fn) == b"abcd".hex()
    assert fn.calls == 1


@pytest.mark.parametrize("change", ["same_size_rewrite", "mtime_restored", "replaced",
                                    "deleted_and_recreated"])
def test_any_change_is_seen(index, tmp_path, change):
    f = tmp_path / "m.bin"
    f.write_bytes(b"abcd")
    _settle()
    fn = Counting()
    index.digest("k", f, fn)
    st = f.stat()
    _settle()
    if change == "same_size_rewrite":
        f.write_bytes(b"abce")
    elif change == "mtime_restored":  # a tamperer resets mtime: ctime still moves
        f.write_bytes(b"abce")
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif change == "replaced":  # a new inode renamed over the old name
        (tmp_path / "new.bin").write_bytes(b"abce")
        os.replace(tmp_path / "new.bin", f)
    else:
        f.unlink()
        f.write_bytes(b"abce")
    assert index.digest("k", f, fn) == b"abce".hex()
    assert fn.calls == 2


def test_recent_files_are_never_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(digest_index, "RACY_SECONDS", 60.0)
    index = DigestIndex(tmp_path / "cache")
    f = tmp_path / "m.bin"
    f.write_bytes(b"abcd")
    fn = Counting()
    index.digest("k", f, fn)
    index.digest("k", f, fn)
    assert fn.calls == 2
    assert not index.dir.exists() or not list(index.dir.iterdir())


def test_damaged_record_means_a_full_hash(index, tmp_path):
    f = tmp_path / "m.bin"
    f.write_bytes(b"abcd")
    _settle()
    fn = Counting()
    index.digest("k", f, fn)
    (record,) = index.dir.iterdir()
    record.write_text("{not json")
    assert index.digest("k", f, fn) == b"abcd".hex()
    assert fn.calls == 2


def test_model_digest_sees_an_edited_external_data_file(index, tmp_path):
    """The record covers the external data too: editing only weights.bin is a new model."""
    m = linear_model().model
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    _settle()
    first = model_digest(path, index)
    assert model_digest(path, index) == first == model_digest(path)
    _settle()
    w = tmp_path / "weights.bin"
    b = bytearray(w.read_bytes())
    b[0] ^= 0x01
    w.write_bytes(bytes(b))
    edited = model_digest(path, index)
    assert edited != first and edited == model_digest(path)


def test_calibration_digest_sees_added_and_edited_samples(index, tmp_path):
    import numpy as np

    from xdna_ep.ort.options import calibration_files_digest

    d = tmp_path / "cal"
    d.mkdir()
    np.savez(d / "s0.npz", x=np.zeros(4, np.float32))
    _settle()
    first = calibration_files_digest(d, index)
    assert calibration_files_digest(d, index) == first == calibration_files_digest(d)
    _settle()
    np.savez(d / "s1.npz", x=np.ones(4, np.float32))  # a new sample: the directory moves
    added = calibration_files_digest(d, index)
    assert added != first and added == calibration_files_digest(d)
    _settle()
    calibration_files_digest(d, index)  # recorded again
    np.savez(d / "s0.npz", x=np.full(4, 2, np.float32))  # an edited sample
    edited = calibration_files_digest(d, index)
    assert edited not in (first, added) and edited == calibration_files_digest(d)
