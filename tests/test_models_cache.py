"""Cache behaviour of ensure_onnx_model: key, reuse, corrupt entries, atomicity, --out, CLI.

The exporter itself is replaced by a fast fake here (the real one runs in the slow
end-to-end tests); everything else is the production code path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import xdna_ep.models.export as export
from xdna_ep.models import cache, convert, ensure_onnx_model


class FakeConverter:
    """Writes the files a real conversion writes; can be told to fail half-way."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def __call__(self, checkpoint_dir: Path, onnx_dir: Path, work_dir: Path) -> dict:
        self.calls += 1
        onnx_dir.mkdir(parents=True)
        work_dir.mkdir(parents=True)
        for name in export.ONNX_FILES:
            (onnx_dir / name).write_bytes(b"onnx" * (10 + self.calls))
        (onnx_dir / "tokenizer.json").write_bytes((checkpoint_dir / "tokenizer.json").read_bytes())
        if self.fail:
            raise RuntimeError("exporter crashed")
        return {"onnx_files": list(export.ONNX_FILES)}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeConverter:
    conv = FakeConverter()
    monkeypatch.setattr(export, "convert_checkpoint", conv)
    return conv


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    ck = tmp_path / "my-whisper"
    ck.mkdir()
    (ck / "model.bin").write_bytes(b"weights-v1")
    (ck / "config.json").write_text("{}")
    (ck / "tokenizer.json").write_text('{"t": 1}')
    return ck


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "xdna-ep" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "xdna-ep" / "models"


def test_hash_depends_on_every_checkpoint_file(checkpoint: Path) -> None:
    h0 = cache.checkpoint_hash(checkpoint)
    assert h0 == cache.checkpoint_hash(checkpoint)
    for name in cache.CHECKPOINT_FILES:
        old = (checkpoint / name).read_bytes()
        (checkpoint / name).write_bytes(old + b" ")
        assert cache.checkpoint_hash(checkpoint) != h0, name
        (checkpoint / name).write_bytes(old)
    assert cache.checkpoint_hash(checkpoint) == h0


def test_converts_once_then_reuses(fake: FakeConverter, checkpoint: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    first = ensure_onnx_model(checkpoint)
    assert first.parent == tmp_path / "xdg" / "xdna-ep" / "models"
    assert first.name == f"my-whisper-{cache.checkpoint_hash(checkpoint)[:16]}"
    manifest = json.loads((first / cache.MANIFEST).read_text())
    assert manifest["checkpoint_sha256"] == cache.checkpoint_hash(checkpoint)
    assert set(manifest["files"]) >= set(export.ONNX_FILES)
    assert ensure_onnx_model(checkpoint) == first
    assert fake.calls == 1
    # a changed checkpoint gets its own entry
    (checkpoint / "model.bin").write_bytes(b"weights-v2")
    second = ensure_onnx_model(checkpoint)
    assert second != first and fake.calls == 2
    # no staging leftovers
    assert not [p for p in first.parent.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


@pytest.mark.parametrize("damage", ["truncate", "delete_file", "delete_manifest",
                                    "garble_manifest"])
def test_corrupt_entry_is_rebuilt(fake: FakeConverter, checkpoint: Path, tmp_path: Path,
                                  damage: str) -> None:
    root = tmp_path / "cache"
    entry = ensure_onnx_model(checkpoint, cache_dir=root)
    target = entry / "decoder_model.onnx"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-3])
    elif damage == "delete_file":
        target.unlink()
    elif damage == "delete_manifest":
        (entry / cache.MANIFEST).unlink()
    else:
        (entry / cache.MANIFEST).write_text("{not json")
    assert not cache.check_entry(entry).valid
    again = ensure_onnx_model(checkpoint, cache_dir=root)
    assert again == entry and fake.calls == 2
    assert cache.check_entry(again).valid


def test_force_rebuilds(fake: FakeConverter, checkpoint: Path, tmp_path: Path) -> None:
    entry = ensure_onnx_model(checkpoint, cache_dir=tmp_path / "c")
    ensure_onnx_model(checkpoint, cache_dir=tmp_path / "c", force=True)
    assert fake.calls == 2 and cache.check_entry(entry).valid


def test_failed_conversion_leaves_nothing(fake: FakeConverter, checkpoint: Path,
                                          tmp_path: Path) -> None:
    fake.fail = True
    root = tmp_path / "c"
    with pytest.raises(RuntimeError, match="exporter crashed"):
        ensure_onnx_model(checkpoint, cache_dir=root)
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []
    fake.fail = False
    assert cache.check_entry(ensure_onnx_model(checkpoint, cache_dir=root)).valid


def test_bad_checkpoint_arguments(fake: FakeConverter, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint_dir"):
        ensure_onnx_model(tmp_path / "missing", cache_dir=tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.bin"):
        ensure_onnx_model(tmp_path / "empty", cache_dir=tmp_path / "c")
    assert fake.calls == 0


def test_convert_to_out_dir(fake: FakeConverter, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert convert.convert_to(checkpoint, out) == out.resolve()
    assert cache.check_entry(out).valid
    with pytest.raises(FileExistsError, match="--force"):
        convert.convert_to(checkpoint, out)
    convert.convert_to(checkpoint, out, force=True)
    assert fake.calls == 2


def test_cli(fake: FakeConverter, checkpoint: Path, tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-out"
    assert convert.main([str(checkpoint), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert convert.main([str(checkpoint), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert convert.main([str(tmp_path / "nope")]) == 2
    assert "checkpoint_dir" in capsys.readouterr().err


def test_importing_models_does_not_import_torch() -> None:
    code = ("import sys, xdna_ep.models; "
            "print(sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bundled_model_has_one_entry_however_named(fake: FakeConverter, tmp_path: Path) -> None:
    by_default = ensure_onnx_model(cache_dir=tmp_path / "c")
    by_path = ensure_onnx_model(convert.bundled_checkpoint_dir(), cache_dir=tmp_path / "c")
    assert by_default == by_path and by_default.name.startswith("tiny.en-")
    assert fake.calls == 1
