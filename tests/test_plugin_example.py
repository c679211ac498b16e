"""examples/run_epcontext.cpp: an EPContext model run from C++ with only ONNX
Runtime's C++ API and the plugin library; output bytes equal the Python session's."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_ort_support import big_linear_model

import xdna_ep
from xdna_ep import cli

ROOT = Path(__file__).resolve().parents[1]


def _ort_include() -> str:
    spec = importlib.util.spec_from_file_location("fetch", ROOT / "provider" / "fetch_ort_headers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return str(mod.include_dir())


def _ort_library() -> Path:
    capi = Path(ort.__file__).parent / "capi"
    (lib,) = sorted(capi.glob("libonnxruntime.so.*"))
    return lib


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """examples/run_epcontext.cpp built against the onnxruntime wheel's library (the
    wheel ships libonnxruntime.so.1.x.y only: a libonnxruntime.so.1 link beside the
    executable satisfies its SONAME)."""
    d = tmp_path_factory.mktemp("example")
    cxx = shutil.which("c++") or shutil.which("g++")
    assert cxx, "a C++ compiler is needed (the package build needs one too)"
    lib = _ort_library()
    (d / "libonnxruntime.so.1").symlink_to(lib)
    exe = d / "run_epcontext"
    subprocess.run([cxx, "-std=c++17", "-O1", f"-I{_ort_include()}",
                    str(ROOT / "examples" / "run_epcontext.cpp"), "-o", str(exe),
                    str(d / "libonnxruntime.so.1"), f"-Wl,-rpath,{d}"], check=True)
    return exe


def test_cpp_example_runs_the_epcontext_model(example, tmp_path):
    exe = example

    onnx.save(big_linear_model(two_regions=True).model, str(tmp_path / "m.onnx"))
    opts = {"cache_dir": str(tmp_path / "cache")}
    ctx = tmp_path / "m_ctx.onnx"  # through the command line, side-file form
    assert cli.main(["compile", str(tmp_path / "m.onnx"), "-o", str(ctx), "--embed-mode", "0",
                     "--cache-dir", opts["cache_dir"], "--report", str(tmp_path / "r.txt")]) == 0
    assert sorted(p.name for p in tmp_path.glob("m_ctx_*.xdnactx")) == [
        "m_ctx_xdna_region_0.xdnactx", "m_ctx_xdna_region_1.xdnactx"]
    assert (tmp_path / "r.txt").is_file()
    x = np.random.default_rng(9).standard_normal((256, 384)).astype(np.float32)
    x.tofile(tmp_path / "x.f32")
    run = subprocess.run([str(exe), str(ctx), xdna_ep.get_library_path(), str(tmp_path / "x.f32"),
                          str(tmp_path / "y.f32")], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "backend=emulator" in run.stdout

    ref = xdna_ep.InferenceSession(str(tmp_path / "m.onnx"), providers=["XDNAExecutionProvider"],
                                   provider_options=[{**opts, "device": "emulator"}])
    want = ref.run(None, {"x": x})[0]
    got = np.fromfile(tmp_path / "y.f32", dtype=np.float32)
    assert got.tobytes() == want.tobytes()


def test_compile_command_refuses_a_model_with_nothing_for_xdna(tmp_path, capsys):
    from onnx import helper

    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [2, 3])],
                          [helper.make_tensor_value_info("y", 1, [2, 3])])
    onnx.save(helper.make_model(g), str(tmp_path / "relu.onnx"))
    rc = cli.main(["compile", str(tmp_path / "relu.onnx"), "-o", str(tmp_path / "out.onnx"),
                   "--cache-dir", str(tmp_path / "cache")])
    assert rc == 1 and not (tmp_path / "out.onnx").exists()
    assert "no region of the model can run on XDNA" in capsys.readouterr().err


def test_cpp_example_reports_a_missing_library(example, tmp_path):
    run = subprocess.run([str(example), "m.onnx", str(tmp_path / "nope.so"), "x", "y"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "ONNX Runtime error" in run.stderr


def test_compile_command_sizes_symbolic_dims_from_the_dims_option(tmp_path, capsys):
    """`xdna-ep compile --dims`: a symbolic row dim is compiled at the size given (the
    report names it); a name that is not a symbolic dim is a clear error."""
    import json

    model = big_linear_model(two_regions=True).model
    for vi in (*model.graph.input, *model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "rows"
    onnx.save(model, str(tmp_path / "m.onnx"))
    base = ["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m_ctx.onnx"),
            "--cache-dir", str(tmp_path / "cache")]
    assert cli.main([*base, "--dims", "rows=256", "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dims"] == {"rows": 256}
    assert "compiled for one input shape" in capsys.readouterr().out
    # compiled for 256 rows (shape nodes may be folded): the file's inputs say so, and
    # ONNX Runtime refuses another row count up front, naming the input
    ctx = onnx.load(str(tmp_path / "m_ctx.onnx"))
    assert all(vi.type.tensor_type.shape.dim[0].dim_value == 256
               for vi in (*ctx.graph.input, *ctx.graph.output))
    from xdna_ep.plugin import get_plugin_ep_devices

    so = ort.SessionOptions()
    so.add_provider_for_devices(get_plugin_ep_devices("emulator"), {"device": "emulator"})
    sess = ort.InferenceSession(str(tmp_path / "m_ctx.onnx"), so)
    name = sess.get_inputs()[0].name
    width = sess.get_inputs()[0].shape[1]
    x = np.random.default_rng(0).standard_normal((256, width)).astype(np.float32)
    assert sess.run(None, {name: x})[0].shape[0] == 256
    with pytest.raises(Exception, match=r"invalid dimensions for input: " + name):
        sess.run(None, {name: x[:128]})
    assert cli.main([*base, "--dims", "nosuch=3"]) == 1
    assert "not symbolic input dims of this model" in capsys.readouterr().err
