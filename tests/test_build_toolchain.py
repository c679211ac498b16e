"""kernels/build_xclbins.py without the real toolchain: it names exactly which tool is
missing or too old (kernels/toolchain.py), caches xclbins + instruction streams by
design hash, and `xdna-ep devices` prints the one command that builds what is missing.
The tools here are FAKE shell scripts that print a version; nothing is compiled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
sys.path.insert(0, str(KERNELS))
import build_xclbins as B  # noqa: E402
import toolchain  # noqa: E402


def _tool(path: Path, version_text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{version_text}'\n")
    path.chmod(0o755)
    return path


def test_names_the_tool_that_is_too_old(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _tool(bin_dir / "aiecc.py", "aiecc.py 0.9.1")
    _tool(bin_dir / "xclbinutil", "XRT Build Version: 2.20.5")
    _tool(tmp_path / "peano" / "bin" / "clang++", "clang version 18.1.0 (llvm-aie)")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PEANO_INSTALL_DIR": str(tmp_path / "peano")}
    res = subprocess.run([sys.executable, str(KERNELS / "build_xclbins.py")],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2, res.stdout + res.stderr
    out = res.stdout
    assert "`aiecc.py` on PATH" in out and "version 0.9.1" in out and "older than the 1.0" in out
    assert "Peano (llvm-aie)" in out and "version 18.1.0" in out and "older than the 19.0" in out
    assert "xclbinutil" not in out.split("Missing or too old:")[1]   # 2.20.5 is new enough
    assert "mlir-aie Python package `aie`" in out and "not found" in out


def test_every_tool_is_named_when_nothing_is_installed(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "PEANO_INSTALL_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, str(KERNELS / "build_xclbins.py")],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2
    for tool in toolchain.TOOLS.values():
        assert tool.what in res.stdout
        assert ".".join(map(str, tool.minimum)) in res.stdout


@pytest.fixture()
def fake_build(monkeypatch, tmp_path: Path):
    """build_one's tool calls replaced: each "build" writes the files aiecc would."""
    calls: list[list[str]] = []

    def run(cmd, cwd, stdout=None):
        calls.append(cmd)
        for a in cmd:
            for flag in ("--xclbin-name=", "--npu-insts-name="):
                if a.startswith(flag):
                    (Path(cwd) / a[len(flag):]).write_bytes(b"FAKE " + a.encode())
        if stdout is not None:
            stdout.write("module {}\n")

    monkeypatch.setattr(B, "run", run)
    tc = B.Toolchain(sys.executable, "aiecc.py", tmp_path, tmp_path, "aiecc=1.0@x")
    return calls, tc


def test_builds_are_cached_by_design_hash(fake_build, tmp_path: Path) -> None:
    calls, tc = fake_build
    doc = B.load_manifest()
    t = next(x for x in B.targets(doc) if x.name == "attn_block")
    cache, out = tmp_path / "cache", tmp_path / "out"
    assert B.build_one(t, tc, out, tmp_path / "w1", doc, cache) == "built"
    n = len(calls)
    assert (out / t.xclbin).is_file() and (out / t.instructions).is_file()
    (out / t.xclbin).unlink()
    assert B.build_one(t, tc, out, tmp_path / "w2", doc, cache) == "cached"
    assert len(calls) == n and (out / t.xclbin).read_bytes().startswith(b"FAKE")
    newer = B.Toolchain(tc.python, tc.aiecc, tc.peano, tc.aie_include, "aiecc=1.1@x")
    assert B.build_one(t, newer, out, tmp_path / "w3", doc, cache) == "built"


def test_design_hash_covers_stage_sources_and_arguments() -> None:
    doc = B.load_manifest()
    t = next(x for x in B.targets(doc) if x.name == "attn_block")
    files = {str(p.relative_to(KERNELS)) for p in B.design_sources(t, doc)}
    assert {"attention/aie/attention_aie.cc", "attention/design.py", "matmul/aie/matmul_aie.cc",
            "add/aie/add_aie.cc", "fused/attn_block/attn_block_aie.cc", "fused/_stages.py",
            "fused/scratch.py", "common/epilogue.h"} <= files
    h = B.design_hash(t, doc, "v1")
    assert h != B.design_hash(t, doc, "v2")
    assert h != B.design_hash(B.Target(t.name, t.folder, t.design, t.source, t.xclbin,
                                       t.instructions, ("--tq", "448")), doc, "v1")


def test_devices_prints_the_one_build_command(tmp_path: Path, monkeypatch) -> None:
    from xdna_ep.runtime import cli as devices_cli

    monkeypatch.setenv("XDNA_EP_XCLBIN_DIR", str(tmp_path))
    d = devices_cli.collect()
    cmd = d["build_command"]
    assert cmd.startswith(f"{sys.executable} ") and "build_xclbins.py" in cmd
    assert f"--out {tmp_path}" in cmd
    for name in d["xclbins"]["missing"]:
        assert name in cmd
    text = devices_cli._text(d)
    assert "build what is missing: " + cmd in text
    assert os.path.isfile(cmd.split()[1])
