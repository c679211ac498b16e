"""kernels/manifest.json: loads through the package, matches the folders, every
design compiles as Python, fused chains are found, malformed input is rejected
with a clear error, and the xclbin build names what is missing."""

from __future__ import annotations

import json
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xdna_ep.kernel_specs import manifest as M

KERNELS_DIR = Path(__file__).resolve().parent.parent / "kernels"
BUILD = KERNELS_DIR / "build_xclbins.py"


def raw() -> dict:
    return json.loads((KERNELS_DIR / "manifest.json").read_text())


def test_loads_with_every_kernel_and_design() -> None:
    m = M.load()
    assert set(M.REQUIRED_KERNELS) <= set(m.kernels)
    assert {"ln_matmul", "attn_block", "ffn_block", "conv_frontend"} <= set(m.designs)
    for k in m.kernels.values():
        assert k.xclbin.endswith(".xclbin") and k.instructions and k.kernel_version >= 1


@pytest.mark.parametrize("chain,name", [
    (["layernorm", "matmul"], "ln_matmul"),
    (["attention", "matmul", "add"], "attn_block"),
    (["layernorm", "matmul", "gelu", "matmul", "add"], "ffn_block"),
    (["conv1d", "gelu", "conv1d", "gelu", "add"], "conv_frontend"),
    (["conv1d", "quantize", "gelu", "dequantize", "conv1d", "quantize", "gelu", "dequantize",
      "add"], "conv_frontend"),
    # dynamic forms: the quantizes whose scales the design reduces on the array
    (["layernorm", "quantize", "matmul"], "ln_matmul"),
    (["quantize", "quantize", "quantize", "attention", "quantize", "matmul", "add"],
     "attn_block"),
    (["layernorm", "quantize", "matmul", "quantize", "gelu", "matmul", "add"], "ffn_block"),
    (["layernorm", "quantize", "matmul", "quantize", "gelu", "matmul", "add", "layernorm",
      "quantize", "matmul"], "ffn_ln_matmul"),
])
def test_find_design(chain: list[str], name: str) -> None:
    design = M.find_design(chain)
    assert design is not None and design.name == name
    assert chain[0] in (design.stages[0], "quantize")


@pytest.mark.parametrize("chain", [[], ["matmul"], ["matmul", "layernorm"],
                                   ["quantize", "conv1d", "gelu", "conv1d", "gelu", "add"],
                                   ["layernorm", "matmul", "quantize"],
                                   ["quantize", "layernorm", "quantize", "matmul"],
                                   ["quantize", "quantize", "attention", "quantize", "matmul",
                                    "add"],
                                   ["attention", "quantize", "matmul", "add"]])
def test_no_design_for_other_chains(chain: list[str]) -> None:
    assert M.find_design(chain) is None


def test_version_key_tracks_every_version() -> None:
    base = M.parse(raw()).version_key()
    changed = raw()
    changed["kernels"]["gelu"]["kernel_version"] += 1
    assert M.parse(changed).version_key() != base
    changed = raw()
    changed["designs"]["ffn_block"]["kernel_version"] += 1
    assert M.parse(changed).version_key() != base
    assert base.startswith(raw()["kernel_version"] + "+") and M.kernel_version() == base


def test_load_manifest_lists_single_kernels_as_designs() -> None:
    doc = M.load_manifest()
    assert doc["designs"]["gelu"]["xclbin"] == raw()["kernels"]["gelu"]["xclbin"]
    assert doc["designs"]["ffn_block"]["stages"] == raw()["designs"]["ffn_block"]["stages"]


def _broken(mutate) -> dict:
    doc = raw()
    mutate(doc)
    return doc


@pytest.mark.parametrize("doc,match", [
    ([], "top level must be a JSON object"),
    (_broken(lambda d: d.pop("kernels")), "missing 'kernels'"),
    (_broken(lambda d: d["kernels"].pop("softmax")), r"kernels \['softmax'\] are missing"),
    (_broken(lambda d: d.update(manifest_version=99)), "manifest_version 99"),
    (_broken(lambda d: d["kernels"]["gelu"].pop("xclbin")), "kernels.gelu is missing 'xclbin'"),
    (_broken(lambda d: d["kernels"]["gelu"].update(kernel_version="1")),
     "kernels.gelu.kernel_version has the wrong type"),
    (_broken(lambda d: d["designs"]["ln_matmul"].update(stages=["layernorm", "nope"])),
     r"unknown kernels \['nope'\]"),
    (_broken(lambda d: d["designs"]["ln_matmul"].update(stages=["layernorm"])),
     "at least two"),
    (_broken(lambda d: d["designs"].update(dup=dict(d["designs"]["ln_matmul"]))),
     "same stage chain"),
    (_broken(lambda d: d["designs"]["conv_frontend"].update(static_only="yes")),
     "static_only must be true or false"),
    (_broken(lambda d: d["designs"]["ln_matmul"].update(
        dynamic_stages=["layernorm", "dequantize", "matmul"])), "only 'quantize' stages"),
    (_broken(lambda d: d["designs"]["ln_matmul"].update(
        dynamic_stages=["layernorm", "quantize"])), "only 'quantize' stages"),
    (_broken(lambda d: d["designs"]["ln_matmul"].update(dynamic_stages="layernorm")),
     "dynamic_stages must be a list"),
    (_broken(lambda d: d["designs"]["conv_frontend"].update(static_only=True)),
     "static_only but lists dynamic_stages"),
    (_broken(lambda d: d["designs"]["conv_frontend"].update(
        dynamic_stages=["conv1d", "softmax", "gelu", "conv1d", "gelu", "add"])),
     "only 'quantize' stages \\(or its glue\\) added"),
    (_broken(lambda d: d["designs"].update(dup={**d["designs"]["ffn_block"],
                                                 "stages": ["layernorm", "quantize", "matmul"],
                                                 "dynamic_stages": []})),
     "same stage chain"),
])
def test_malformed_manifest_is_rejected(doc, match: str) -> None:
    with pytest.raises(M.ManifestError, match=match):
        M.parse(doc)


def test_invalid_json_is_rejected() -> None:
    with pytest.raises(M.ManifestError, match="not valid JSON"):
        M.loads("{ nope")


def _designs() -> list[Path]:
    doc = raw()
    paths = [KERNELS_DIR / k["folder"] / k["design"] for k in doc["kernels"].values()]
    paths += [KERNELS_DIR / d["folder"] / d["design"] for d in doc["designs"].values()]
    return sorted(set(paths))


@pytest.mark.parametrize("path", _designs(), ids=lambda p: str(p.relative_to(KERNELS_DIR)))
def test_every_design_py_compiles(path: Path, tmp_path: Path) -> None:
    py_compile.compile(str(path), cfile=str(tmp_path / "d.pyc"), doraise=True)


def test_build_check_passes_on_the_tree() -> None:
    """Every kernel and design traces for every Whisper size, tiny to large-v3."""
    res = subprocess.run([sys.executable, str(BUILD), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout
    for size in ("tiny", "base", "small", "medium", "large-v3"):
        for design in ("attn_block", "ffn_ln_matmul", "conv_frontend", "matmul", "attention"):
            assert any(line.startswith(size) and f" {design}[" in line
                       for line in res.stdout.splitlines()), (size, design)


def test_build_check_detects_drift(tmp_path: Path) -> None:
    copy = tmp_path / "kernels"
    shutil.copytree(KERNELS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "xclbin"))
    (copy / "gelu" / "design.py").unlink()
    (copy / "newkernel").mkdir()
    (copy / "newkernel" / "design.py").write_text("x = 1\n")
    (copy / "add" / "design.py").write_text("def broken(:\n")
    res = subprocess.run([sys.executable, str(copy / "build_xclbins.py"), "--check",
                          "--sizes", "tiny"], capture_output=True, text=True)
    assert res.returncode == 1
    assert "gelu/design.py (design) is missing" in res.stdout
    assert "kernels/newkernel has a design.py but no manifest entry" in res.stdout
    assert "add/design.py does not compile" in res.stdout


def test_build_names_what_is_missing(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "PEANO_INSTALL_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, str(BUILD)], capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert "Missing or too old:" in res.stdout and "aiecc.py" in res.stdout


# --- designs traced against the FAKE IRON of kernels/iron_check.py ------------------
#
# The MLIR-AIE toolchain is not installed here, so the designs cannot be lowered.
# kernels/iron_check.py runs them against a recording stand-in of IRON (clearly a
# fake: it lowers nothing) and checks volumes, access-pattern bounds, arity and
# tile memory. `build_xclbins.py --check` traces every design for every Whisper
# size; the cases below add shapes off the Whisper grid.

sys.path.insert(0, str(KERNELS_DIR))
import iron_check  # noqa: E402


def _load(rel: str):
    import importlib.util

    path = KERNELS_DIR / rel
    name = f"design_{path.parent.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("rel,fn,args", [
    ("gelu/design.py", "gelu_design", (1500 * 1536, 4800)),
    ("add/design.py", "add_design", ("float32", 1500 * 384, 1200)),
    ("add/design.py", "add_design", ("int8", 1500 * 384, 1200)),
    ("layernorm/design.py", "layernorm_design", (1500, 384, "float32", "int8", 5)),
    ("layernorm/design.py", "layernorm_design", (1500, 512, "int8", "float32", 5)),
    ("conv1d/design.py", "conv1d_design", (1, 80, 384, 3000, 3, 1, 1)),
    ("conv1d/design.py", "conv1d_design", (2, 384, 384, 3000, 3, 2, 1)),
    ("fused/ln_matmul/design.py", "build", (1500, 384, 384, "int8")),
    ("fused/ln_matmul/design.py", "build", (100, 512, 256, "float32")),
    ("fused/ffn_block/design.py", "build", (300, 384, 1536)),
    ("fused/ffn_ln_matmul/design.py", "build", (300, 384, 1536, 1152, "int8")),
    ("fused/ffn_ln_matmul/design.py", "build", (100, 512, 2048, 256, "float32")),
    ("fused/conv_frontend/design.py", "build", (1, 80, 384, 3000)),
    ("fused/attn_block/design.py", "build", (300, 300, 6, 64)),
])
def test_design_traces_consistently(rel: str, fn: str, args: tuple) -> None:
    rep = iron_check.trace(lambda: _load(rel), fn, *args)
    assert 0 < rep.workers <= 16 and rep.max_core <= iron_check.CORE_MEMORY


def test_attn_block_needs_the_attention_hook(monkeypatch) -> None:
    """Without kernels/attention/design.py's fused_stage(), building attn_block
    raises NotImplementedError naming the missing hook (never a silent stub)."""
    import types

    no_hook = types.ModuleType("attention.design")
    pkg = types.ModuleType("attention")
    pkg.design = no_hook
    monkeypatch.setitem(sys.modules, "attention", pkg)
    monkeypatch.setitem(sys.modules, "attention.design", no_hook)
    with pytest.raises(NotImplementedError, match="fused_stage"):
        iron_check.trace(lambda: _load("fused/attn_block/design.py"), "build", 1500, 1500, 6, 64)


def test_design_takes_a_chain_only_in_its_mode() -> None:
    """The glue rule for dynamic forms: dynamic-mode stages run only as a design's
    dynamic form, whose added quantizes (leading ones included, attn_block's q/k/v)
    must be dynamic; static stages run only as the static form (stages, or with glue)."""
    m = M.load()
    ln, attn, conv = m.designs["ln_matmul"], m.designs["attn_block"], m.designs["conv_frontend"]
    assert ln.takes(["layernorm", "matmul"], [False, False])
    assert not ln.takes(["layernorm", "matmul"], [False, True])       # static form, dynamic mm
    assert ln.takes(["layernorm", "quantize", "matmul"], [False, True, True])
    assert not ln.takes(["layernorm", "quantize", "matmul"], [False, False, False])  # static q
    assert not ln.takes(["layernorm", "quantize", "matmul"], [False, False, True])
    chain = ["quantize"] * 3 + ["attention", "quantize", "matmul", "add"]
    assert attn.takes(chain, [True] * 5 + [True, False])
    assert not attn.takes(chain, [True, True, False, True, True, True, False])
    assert attn.dynamic_glue() == (True, True, True, False, True, False, False)
    glued = ["conv1d", "quantize", "gelu", "dequantize", "conv1d", "quantize", "gelu",
             "dequantize", "add"]
    assert conv.takes(glued, [False] * 9)
    assert conv.takes(glued, [True] * 8 + [False])    # the dynamic front end (add: float)
    assert not conv.takes(glued, [True, False] + [True] * 6 + [False])   # a static quantize


def test_version_key_tracks_the_grouping_rules() -> None:
    """A program cached before a design accepted its dynamic chain was grouped into
    one-stage launches: a change of the chains a design takes changes the key."""
    base = M.parse(raw()).version_key()
    changed = raw()
    changed["designs"]["ln_matmul"].pop("dynamic_stages")
    assert M.parse(changed).version_key() != base
    changed = raw()
    changed["designs"]["conv_frontend"].pop("dynamic_stages")   # the dynamic front end
    assert M.parse(changed).version_key() != base


def test_conv_frontend_has_a_dynamic_form_and_no_design_is_static_only() -> None:
    """conv_frontend's dynamic form is its glued chain with every scale reduced on the
    array (kernels/fused/README.md): the two quantizes and the dequantizes after the
    gelus are the added stages."""
    m = M.load()
    conv = m.designs["conv_frontend"]
    assert conv.dynamic_stages == ("conv1d", "quantize", "gelu", "dequantize") * 2 + ("add",)
    assert conv.dynamic_glue() == (False, True, False, True) * 2 + (False,)
    assert not any(d.static_only for d in m.designs.values())

