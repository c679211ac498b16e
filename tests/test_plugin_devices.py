"""The plugin library's device list and device-selection policy on a machine with
and without an amdxdna NPU.

The NPU machine is a FAKE tree of files (fakes/fake_npu_tree.py) the library is
pointed at through XDNA_EP_*_ROOT, with a FAKE NPU backend library (any library
that loads). ONNX Runtime asks a plugin for its devices once, at registration, and
keeps them for the process: each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from plugin_support import one_stage_program, write_program_model

from xdna_ep.compile.program import TensorSpec as T
from xdna_ep.runtime import EmulatorDevice, Probes, probe_system

from fakes.fake_npu_tree import BOARD, FakeNpuTree, make_fake_npu_tree  # isort: skip

EP = "XDNAExecutionProvider"
X = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
PROGRAM = one_stage_program("q", "quantize", [T("x", "float32", (2, 3))],
                            [T("y", "int8", (2, 3))], attrs={"out_scale": 0.5})

# Runs in the child: registers the library, prints one JSON line: the XDNA
# devices, and what the BODY put into `out`.
CHILD = """
import json, sys
import numpy as np
import onnxruntime as ort
import xdna_ep
ort.set_default_logger_severity(1)   # the library's info lines (why no NPU entry)
xdna_ep.register()
xdna = [d for d in ort.get_ep_devices() if d.ep_name == "XDNAExecutionProvider"]
out = {{"devices": [{{"type": str(d.device.type).rsplit(".", 1)[-1],
                      "vendor": d.device.vendor, "vendor_id": d.device.vendor_id,
                      "device_id": d.device.device_id, "hw_metadata": dict(d.device.metadata),
                      "ep_metadata": dict(d.ep_metadata), "ep_options": dict(d.ep_options)}}
                     for d in xdna]}}
x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5

def session(path, policy=None, devices=None, options=None):
    so = ort.SessionOptions()
    so.log_severity_level = 1
    if policy is not None:
        so.set_provider_selection_policy(getattr(ort.OrtExecutionProviderDevicePolicy, policy))
    else:
        so.add_provider_for_devices(devices, options or {{}})
    return ort.InferenceSession(path, sess_options=so)

def attempt(key, make):
    try:
        sess = make()
        out[key] = {{"providers": sess.get_providers(),
                     "y": sess.run(None, {{"x": x}})[0].tolist()}}
    except Exception as exc:
        out[key] = {{"error": str(exc)}}

{body}
print("RESULT " + json.dumps(out))
"""


def _child(env: dict[str, str], body: str = "") -> tuple[dict, str]:
    """The child's JSON result and its stderr (ONNX Runtime's log)."""
    code = CHILD.format(body=textwrap.dedent(body))
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), run.stderr


def _models(tmp_path: Path) -> tuple[Path, Path]:
    """A raw model (one Relu, no EPContext node) and an EPContext model (one
    quantize stage, PROGRAM) of the same input x [2, 3]."""
    import onnx

    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [2, 3])],
                          [helper.make_tensor_value_info("y", 1, [2, 3])])
    raw = tmp_path / "raw.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(raw))
    return raw, write_program_model(PROGRAM, tmp_path / "ctx.onnx")


def _emulated(x: np.ndarray) -> list:
    """PROGRAM's output for x on the Python runtime's emulator device."""
    return EmulatorDevice().load(PROGRAM).run({"x": x})["y"].tolist()


@pytest.fixture
def fake_machine(fake_backend, tmp_path: Path):
    """make_fake_npu_tree with the NPU backend built against the FAKE XRT library
    and FAKE xclbins for every design."""
    from npu_support import write_fake_designs

    xclbins = str(write_fake_designs(tmp_path / "xclbin"))

    def make(**tree):
        return make_fake_npu_tree(tmp_path / "machine", backend_library=str(fake_backend.library),
                                  xclbin_dir=xclbins, **tree)
    return make


@pytest.fixture
def npu_tree(fake_machine) -> FakeNpuTree:
    return fake_machine()


def test_fake_npu_is_listed_as_npu_hardware_beside_the_emulator(npu_tree):
    # unregistering releases the factory and the NPU hardware device it made; a new
    # registration makes them again
    out, _ = _child(npu_tree.env(), """
        ort.unregister_execution_provider_library("XDNAExecutionProvider")
        out["after_unregister"] = [d.ep_name for d in ort.get_ep_devices()]
        xdna_ep.register()
        again = [d for d in ort.get_ep_devices() if d.ep_name == "XDNAExecutionProvider"]
        out["again"] = [(d.ep_metadata["backend"], d.device.device_id) for d in again]
    """)
    assert "XDNAExecutionProvider" not in out["after_unregister"]
    assert out["again"] == [["npu", 0x1502], ["emulator", 0]]
    npu, emu = out["devices"]
    assert npu["type"] == "NPU" and npu["vendor_id"] == 0x1022 and npu["vendor"] == "AMD"
    assert npu["device_id"] == 0x1502
    meta = npu["ep_metadata"]
    assert meta["backend"] == "npu"
    assert meta["device_node"] == str(npu_tree.dev_root / "accel0")
    assert meta["firmware"] == "1.5.5.391" and meta["driver"] == "amdxdna 2.19.0"
    assert meta["board"] == BOARD
    # Linux ONNX Runtime lists no NPU: the library made the hardware device and says so
    assert npu["hw_metadata"]["discovered_by"] == EP
    assert npu["hw_metadata"]["device_node"] == meta["device_node"]
    assert npu["ep_options"] == {}
    # the emulator entry is unchanged: on the CPU, never presented as the NPU
    assert emu["type"] == "CPU" and emu["ep_metadata"]["backend"] == "emulator"
    assert emu["ep_options"] == {}


@pytest.mark.parametrize("tree, says", [
    ({"node": False}, "accel* not found"),
    ({"driver": "intel_vpu"}, "accel nodes belong to other drivers: accel0: intel_vpu"),
    ({"loaded": False}, "the amdxdna driver is not loaded"),
    ({"firmware": "1.4.2.100"}, "NPU firmware 1.4.2.100 on"),
    ({"vendor": "0x8086"}, "has PCI vendor id 0x8086, not AMD's 0x1022"),
    ({"backend": False}, "the NPU backend library"),
])
def test_no_usable_npu_lists_only_the_emulator_and_says_why_once(fake_machine, tmp_path, tree,
                                                                   says):
    tree = dict(tree)
    fake = fake_machine(**tree) if tree.pop("backend", True) else \
        make_fake_npu_tree(tmp_path / "machine")
    out, err = _child(fake.env())
    (emu,) = out["devices"]
    assert emu["type"] == "CPU" and emu["ep_metadata"]["backend"] == "emulator"
    lines = [ln for ln in err.splitlines() if "no NPU entry in the device list" in ln]
    assert len(lines) == 1 and says in lines[0]
    assert "[I:" in lines[0]  # info, not a warning or an error
    # the twin of the Python probe: its device-level reasons, word for word
    info = probe_system(Probes(dev_root=fake.dev_root, sys_root=fake.sys_root,
                               proc_modules=fake.proc_modules))
    for p in info.problems:
        if p.missing in ("device-node", "driver", "firmware"):
            assert p.message in lines[0]


def test_the_python_probe_agrees_that_the_fake_npu_is_usable(npu_tree):
    info = probe_system(Probes(dev_root=npu_tree.dev_root, sys_root=npu_tree.sys_root,
                               proc_modules=npu_tree.proc_modules))
    assert not [p for p in info.problems if p.missing in ("device-node", "driver", "firmware")]


def test_prefer_npu_without_an_npu_stays_on_the_cpu(tmp_path):
    fake = make_fake_npu_tree(tmp_path / "machine", driver="intel_vpu")
    raw, ctx = _models(tmp_path)
    out, err = _child(fake.env(), f"""
        attempt("raw", lambda: session({str(raw)!r}, "PREFER_NPU"))
        attempt("ctx", lambda: session({str(ctx)!r}, "PREFER_NPU"))
    """)
    assert out["raw"]["y"] == np.maximum(X, 0).tolist()
    assert "created for 1 device(s) [emulator]" in err
    assert "emulator, which is not an NPU, so it claims no node" in err
    assert "EPContext" in out["ctx"]["error"]  # nothing on the CPU runs it
    assert "device=npu" not in err


def test_prefer_npu_with_the_fake_npu_selects_the_npu_entry(npu_tree, tmp_path):
    raw, ctx = _models(tmp_path)
    out, err = _child(npu_tree.env(), f"""
        attempt("raw", lambda: session({str(raw)!r}, "PREFER_NPU"))
        attempt("ctx", lambda: session({str(ctx)!r}, "PREFER_NPU"))
    """)
    # ORT hands the EP both of its entries (the NPU, and the emulator as the CPU pick)
    assert "created for 2 device(s) [npu, emulator]" in err
    node = str(npu_tree.dev_root / "accel0")
    assert f"device=npu (the NPU at {node}): its NPU entry was selected" in err
    assert out["raw"]["providers"][0] == EP
    assert out["raw"]["y"] == np.maximum(X, 0).tolist()  # a raw model: all on the CPU
    # the region runs on the (FAKE) NPU, never quietly on the emulator
    assert out["ctx"]["y"] == _emulated(X)
    assert "1 EPContext region(s) compiled: 1 on the NPU, 0 on the host emulator" in err
    assert "claims no node" not in err


def test_explicit_device_choices_on_the_fake_npu_machine(npu_tree, tmp_path):
    _, ctx = _models(tmp_path)
    out, err = _child(npu_tree.env(), f"""
        npu = [d for d in xdna if d.ep_metadata["backend"] == "npu"]
        emu = [d for d in xdna if d.ep_metadata["backend"] == "emulator"]
        attempt("all_emulator", lambda: session({str(ctx)!r}, devices=xdna,
                                                options={{"device": "emulator"}}))
        attempt("npu_entry", lambda: session({str(ctx)!r}, devices=npu))
        attempt("auto_npu", lambda: session({str(ctx)!r}, devices=xdna, options={{"device": "auto"}}))
        attempt("auto_emulator", lambda: session({str(ctx)!r}, devices=emu,
                                                 options={{"device": "auto"}}))
        attempt("npu_on_emulator", lambda: session({str(ctx)!r}, devices=emu,
                                                   options={{"device": "npu"}}))
    """)
    for key in ("all_emulator", "npu_entry", "auto_npu", "auto_emulator", "npu_on_emulator"):
        assert out[key]["y"] == _emulated(X), key
    # device=emulator runs the emulator; npu/auto try the backend whichever entry was
    # selected (the device list is a probe; the backend opening a device is the truth)
    assert err.count("compiled: 0 on the NPU, 1 on the host emulator") == 1
    assert err.count("compiled: 1 on the NPU, 0 on the host emulator") == 4
    assert err.count("was not among the devices selected; the NPU backend is tried") == 2


def test_device_npu_without_an_npu_entry_says_why(tmp_path):
    # old firmware and no backend library: the error names both reasons
    fake = make_fake_npu_tree(tmp_path / "machine", firmware="1.0.0.1")
    _, ctx = _models(tmp_path)
    out, _ = _child(fake.env(), f"""
        attempt("npu", lambda: session({str(ctx)!r}, devices=xdna, options={{"device": "npu"}}))
    """)
    msg = out["npu"]["error"]
    assert "device=npu, but the NPU is unavailable" in msg
    assert "the NPU backend library" in msg
    assert "the device probe:" in msg and "NPU firmware 1.0.0.1" in msg


@pytest.mark.parametrize("usable", [True, False])
def test_devices_cli_shows_the_plugin_view(fake_machine, usable):
    fake = fake_machine(loaded=usable)
    env = {**os.environ, **fake.env()}
    run = subprocess.run([sys.executable, "-m", "xdna_ep", "devices", "--json"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    view = json.loads(run.stdout)["plugin"]
    backends = [(d["backend"], d["device_type"]) for d in view["devices"]]
    assert view["npu_entry"] is usable
    if usable:
        assert backends == [("npu", "NPU"), ("emulator", "CPU")]
        assert view["npu_detail"] == str(fake.dev_root / "accel0")
    else:
        assert backends == [("emulator", "CPU")]
        assert "the amdxdna driver is not loaded" in view["npu_detail"]
    text = subprocess.run([sys.executable, "-m", "xdna_ep", "devices"], env=env,
                          capture_output=True, text=True, timeout=600).stdout
    assert ("backend=npu      device type NPU, 0x1022:0x1502" in text) is usable
    assert ("no NPU entry: " in text) is not usable


def test_the_python_route_selects_only_the_emulator_entry(npu_tree, tmp_path):
    """xdna_ep.InferenceSession runs emulator regions through the plugin with
    device=emulator; on an NPU machine it must not hand the EP the NPU entry too."""
    _, ctx = _models(tmp_path)
    out, err = _child(npu_tree.env(), f"""
        from xdna_ep.ort import plugin_route
        so = plugin_route.session_options(None, plugin_route.runtime_options("emulator", "error", None))
        so.log_severity_level = 1
        attempt("route", lambda: ort.InferenceSession({str(ctx)!r}, sess_options=so))
    """)
    assert out["route"]["y"] == _emulated(X)
    assert "created for 1 device(s) [emulator]" in err
