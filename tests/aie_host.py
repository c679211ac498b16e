"""The host build of AIE core code for the tests: a fused design's core source (its
stage kernels' AIE sources and shims) compiled as a shared library with the scalar
aie_api stand-in (kernels/attention/aie/host_stub), so a test can drive the exact
functions the cores run through a design's schedule and compare bytes with the
emulator. No NPU and no aiecc are involved."""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def build_core(source: Path, out_dir: Path) -> ctypes.CDLL:
    """Compiles `source` (a *_aie.cc under kernels/) into out_dir and loads it."""
    cxx = shutil.which(sysconfig.get_config_var("CXX") or "") or shutil.which("c++")
    assert cxx, "a C++ compiler is needed (it also builds xdna_ep._emulator)"
    so = out_dir / (source.stem + ".so")
    subprocess.run([cxx, "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-I",
                    str(KERNELS / "attention" / "aie" / "host_stub"), "-o", str(so),
                    str(source)], check=True)
    return ctypes.CDLL(str(so))


def core_fixture(*rel: str):
    """A module-scoped pytest fixture giving the host build of kernels/<rel...>."""
    @pytest.fixture(scope="module")
    def core(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
        return build_core(KERNELS.joinpath(*rel), tmp_path_factory.mktemp("core"))

    return core


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    """A C-contiguous array's data pointer, for a core function's argument."""
    assert a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.c_void_p)


def f32_bits(x: float) -> int:
    """The int32 holding x's float32 bits (xdna_dynscale_reduce's neg_limit argument)."""
    return struct.unpack("<i", struct.pack("<f", x))[0]
