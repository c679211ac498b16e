"""Manifest lookup, the xclbin search path and instruction files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from xdna_ep.runtime.xclbins import (
    ENV_XCLBIN_DIR,
    ManifestError,
    design_entries,
    find_designs,
    kernels_dir,
    load_manifest,
    read_instructions,
    search_path,
)


def test_search_path_env_first_then_package(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    dirs = search_path({ENV_XCLBIN_DIR: f"{a}{os.pathsep}{b}"})
    assert dirs == [a, b, kernels_dir() / "xclbin"]
    assert search_path({}) == [kernels_dir() / "xclbin"]


def test_manifest_forms_and_defaults() -> None:
    as_list = {"designs": [{"name": "gelu", "xclbin": "g.xclbin", "instructions": "g.txt"}]}
    as_map = {"designs": {"gelu": {}}}
    e1, e2 = design_entries(as_list)["gelu"], design_entries(as_map)["gelu"]
    assert (e1.xclbin, e1.insts, e1.kernel) == ("g.xclbin", "g.txt", "MLIR_AIE")
    assert (e2.xclbin, e2.insts) == ("gelu.xclbin", "gelu.insts.bin")
    with pytest.raises(ManifestError, match="designs"):
        design_entries({})
    # the project's manifest shape: per-kernel designs plus fused chains
    doc = {"xclbin_kernel_name": "MLIR_AIE2",
           "kernels": {"matmul": {"xclbin": "matmul.xclbin", "instructions": "mm.bin"}},
           "designs": {"ln_matmul": {"xclbin": "lm.xclbin", "instructions": "lm.bin",
                                     "stages": ["layernorm", "matmul"]}}}
    e = design_entries(doc)
    assert set(e) == {"matmul", "ln_matmul"}
    assert (e["matmul"].insts, e["ln_matmul"].xclbin) == ("mm.bin", "lm.xclbin")
    assert {x.kernel for x in e.values()} == {"MLIR_AIE2"}


def test_the_shipped_manifest_is_understood() -> None:
    entries = design_entries(load_manifest())
    assert "matmul" in entries
    assert all(x.xclbin.endswith(".xclbin") and x.insts for x in entries.values())


def test_missing_or_broken_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path / "manifest.json")


def test_find_designs_reports_found_and_missing(tmp_path: Path) -> None:
    (tmp_path / "a.xclbin").write_bytes(b"x")
    (tmp_path / "a.insts.bin").write_bytes(b"\x01\x00\x00\x00")
    (tmp_path / "b.insts.bin").write_bytes(b"\x01\x00\x00\x00")
    doc = {"designs": {"a": {}, "b": {}}}
    look = find_designs(["a", "b", "c"], manifest=doc, dirs=[tmp_path])
    assert set(look.found) == {"a"} and look.found["a"].xclbin == tmp_path / "a.xclbin"
    assert "b.xclbin" in look.missing["b"] and "not in the kernel manifest" in look.missing["c"]
    assert set(find_designs(None, manifest=doc, dirs=[tmp_path]).found) == {"a"}


def test_read_instructions_formats_and_errors(tmp_path: Path) -> None:
    words = [0x06030100, 0xFFFFFFFF, 0x0]
    (tmp_path / "i.txt").write_text("06030100\nffffffff\n00000000\n")
    (tmp_path / "i.bin").write_bytes(np.array(words, "<u4").tobytes())
    assert read_instructions(tmp_path / "i.txt").tolist() == words
    assert read_instructions(tmp_path / "i.bin").tolist() == words
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 6)
    with pytest.raises(ValueError, match="whole number"):
        read_instructions(tmp_path / "odd.bin")
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_instructions(tmp_path / "e.txt")
    assert read_instructions(tmp_path / "i.bin").dtype == np.uint32
