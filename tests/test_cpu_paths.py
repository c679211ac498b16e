"""Run-time kernel path selection: every path the CPU supports is reachable,
forced paths are honoured, and all paths compute the same bytes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from xdna_ep import _emulator
from xdna_ep.kernel_specs import registry

ALL_PATHS = ("portable", "avx2", "avx512_vnni", "amx")


def test_paths_listed_portable_first() -> None:
    paths = _emulator.kernel_paths()
    assert paths[0] == "portable"
    assert set(paths) <= set(ALL_PATHS)
    assert _emulator.active_kernel_path() in paths


def test_set_kernel_path_round_trip() -> None:
    before = _emulator.active_kernel_path()
    try:
        for path in _emulator.kernel_paths():
            _emulator.set_kernel_path(path)
            assert _emulator.active_kernel_path() == path
        _emulator.set_kernel_path("auto")
        assert _emulator.active_kernel_path() == _emulator.kernel_paths()[-1]
    finally:
        _emulator.set_kernel_path(before)


def test_unknown_or_unsupported_path_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kernel path"):
        _emulator.set_kernel_path("sse9")
    for path in set(ALL_PATHS) - set(_emulator.kernel_paths()):
        with pytest.raises(RuntimeError, match="not supported"):
            _emulator.set_kernel_path(path)


@pytest.mark.parametrize("path", _emulator.kernel_paths())
def test_env_forces_path(path: str) -> None:
    env = {**os.environ, "XDNA_EP_KERNEL_PATH": path}
    out = subprocess.run(
        [sys.executable, "-c", "from xdna_ep import _emulator; print(_emulator.active_kernel_path())"],
        env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == path


def _matmul_all_paths(M: int, K: int, N: int, attrs: dict, threads: int) -> dict[str, bytes]:
    rng = np.random.default_rng(M + K + N)
    consts = {"weight": rng.integers(-127, 128, (K, N), dtype=np.int8),
              "w_scale": rng.uniform(1e-3, 1e-2, N).astype(np.float32),
              "bias": rng.normal(0, 1, N).astype(np.float32)}
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    spec = registry.get("matmul")
    state = spec.prepare(consts, attrs)  # packed once, used by every path
    before, before_threads = _emulator.active_kernel_path(), _emulator.num_threads()
    out: dict[str, bytes] = {}
    try:
        _emulator.set_num_threads(threads)
        for path in _emulator.kernel_paths():
            _emulator.set_kernel_path(path)
            out[path] = spec.run(state, [a], attrs)[0].tobytes()
    finally:
        _emulator.set_kernel_path(before)
        _emulator.set_num_threads(before_threads)
    out["reference"] = spec.reference(consts, [a], attrs)[0].tobytes()
    return out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M,K,N", [(200, 390, 131), (1, 384, 2000), (7, 1537, 66)])
def test_all_paths_same_bytes(M: int, K: int, N: int, threads: int) -> None:
    for attrs in ({"out": "int8", "in_scale": 0.05, "out_scale": 0.2},
                  {"out": "float32", "in_scale": 0.05}):
        results = _matmul_all_paths(M, K, N, attrs, threads)
        assert len(set(results.values())) == 1, list(results)
