"""Program.to_bytes / save are byte-stable (reproducible cache blobs)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from xdna_ep.compile.program import Launch, Program, Stage, TensorSpec


def _program(order: list[str]) -> Program:
    rng = np.random.default_rng(0)
    arrays = {"w": rng.integers(-127, 128, (8, 6), dtype=np.int8),
              "ws": rng.uniform(0.01, 0.02, 6).astype(np.float32),
              "b": rng.normal(0, 1, 6).astype(np.float32)}
    consts = {k: arrays[k] for k in order}
    st = Stage("matmul", ("a",), ("y",), {"weight": "w", "w_scale": "ws", "bias": "b"},
               {"out": "float32", "in_scale": 0.05})
    return Program("p", (TensorSpec("a", "int8", ("M", 8)),), (TensorSpec("y", "float32",
                                                                          ("M", 6)),),
                   (Launch("matmul", (st,)),), consts, "v1", {"region": 0, "sqnr_db": 31.5})


def _shift_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + seconds)


def test_to_bytes_is_byte_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same program, other wall clock and other constant insertion order -> same bytes."""
    first = _program(["w", "ws", "b"]).to_bytes()
    _shift_clock(monkeypatch, 3 * 86400 + 7)  # zip timestamps have 2 s resolution
    second = _program(["b", "w", "ws"]).to_bytes()
    assert first == second
    back = Program.from_bytes(first)
    assert back.to_json_dict() == _program(["w", "ws", "b"]).to_json_dict()
    for k, a in _program(["w", "ws", "b"]).constants.items():
        assert back.constants[k].dtype == a.dtype and back.constants[k].tobytes() == a.tobytes()
    assert back.to_bytes() == first


def test_save_is_byte_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d1 = _program(["w", "ws", "b"]).save(tmp_path / "one")
    _shift_clock(monkeypatch, 86400 + 3)
    d2 = _program(["ws", "b", "w"]).save(tmp_path / "two")
    for f in ("program.json", "constants.npz"):
        assert (d1 / f).read_bytes() == (d2 / f).read_bytes(), f
    loaded = Program.load(d1)
    assert loaded.to_bytes() == _program(["w", "ws", "b"]).to_bytes()


def test_to_bytes_changes_with_content() -> None:
    p = _program(["w", "ws", "b"])
    q = _program(["w", "ws", "b"])
    q.constants["b"] = q.constants["b"] + np.float32(1.0)
    assert p.to_bytes() != q.to_bytes()
