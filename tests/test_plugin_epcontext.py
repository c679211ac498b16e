"""EPContext models: the payload format (Python writer, C++ reader), embed modes,
bad payloads, unknown stages, and a compiled synthetic encoder layer run by the
plugin library equal to the Python emulator session."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from plugin_support import EP, one_stage_program, plugin_session, write_program_model
from synthetic.graphs import encoder_layer

import xdna_ep
from xdna_ep.compile.program import TensorSpec as T
from xdna_ep.ort.compile_cli import compile_to_epcontext
from xdna_ep.ort.epcontext import (
    FORMAT_VERSION,
    HEADER,
    MAGIC,
    PayloadError,
    payload_bytes,
    read_header,
)


def _gelu_program():
    return one_stage_program("g", "gelu", [T("x", "int8", (2, 5)), T("xs", "float32", (1,))],
                             [T("y", "int8", (2, 5)), T("ys", "float32", (1,))],
                             attrs={"dynamic": True})


FEEDS = {"x": np.arange(-5, 5, dtype=np.int8).reshape(2, 5), "xs": np.array([0.1], np.float32)}


def _ctx_attr(model: onnx.ModelProto) -> onnx.AttributeProto:
    node = next(n for n in model.graph.node if n.op_type == "EPContext")
    return next(a for a in node.attribute if a.name == "ep_cache_context")


def _with_payload(model_path, blob: bytes, out_path):
    model = onnx.load(str(model_path))
    _ctx_attr(model).s = blob
    onnx.save(model, str(out_path))
    return out_path


def _reseal(body: bytes, version: int = FORMAT_VERSION) -> bytes:
    return HEADER.pack(MAGIC, version, HEADER.size, len(body), zlib.crc32(body), 0) + body


def test_payload_header_round_trip():
    blob = payload_bytes(_gelu_program())
    head = read_header(blob)
    assert head.version == FORMAT_VERSION and head.body_size == len(blob) - HEADER.size
    assert blob[:8] == b"XDNAEPCX" and head.crc32 == zlib.crc32(blob[HEADER.size:])
    with pytest.raises(PayloadError, match="checksum"):
        read_header(blob[:-1] + bytes([blob[-1] ^ 1]))


def test_epcontext_node_attributes(tmp_path):
    path = write_program_model(_gelu_program(), tmp_path / "g.onnx")
    model = onnx.load(str(path))
    (node,) = model.graph.node
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert (node.op_type, node.domain) == ("EPContext", "com.microsoft")
    assert attrs["source"] == b"XDNAExecutionProvider" and attrs["main_context"] == 1
    assert attrs["embed_mode"] == 1 and attrs["partition_name"] == b"xdna_region_0"
    assert read_header(attrs["ep_cache_context"]).version == FORMAT_VERSION
    assert {o.domain for o in model.opset_import} == {"", "com.microsoft"}


def test_embed_modes_0_and_1_give_the_same_outputs(tmp_path):
    prog = _gelu_program()
    one = plugin_session(write_program_model(prog, tmp_path / "one.onnx", embed_mode=1))
    side_model = write_program_model(prog, tmp_path / "zero.onnx", embed_mode=0)
    side = tmp_path / "zero_xdna_region_0.xdnactx"
    assert side.is_file() and _ctx_attr(onnx.load(str(side_model))).s == side.name.encode()
    zero = plugin_session(side_model)
    a, b = one.run(None, FEEDS), zero.run(None, FEEDS)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))


def test_missing_side_file_is_a_clear_error(tmp_path):
    path = write_program_model(_gelu_program(), tmp_path / "m.onnx", embed_mode=0)
    (tmp_path / "m_xdna_region_0.xdnactx").unlink()
    with pytest.raises(Exception, match="side file .*m_xdna_region_0.xdnactx.* missing"):
        plugin_session(path)


def test_side_file_outside_the_model_folder_is_refused(tmp_path):
    path = write_program_model(_gelu_program(), tmp_path / "m.onnx", embed_mode=0)
    model = onnx.load(str(path))
    _ctx_attr(model).s = b"../m_xdna_region_0.xdnactx"
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(Exception, match="plain file name"):
        plugin_session(tmp_path / "bad.onnx")


@pytest.mark.parametrize("damage, match", [
    (lambda b: b"NOTXDNA!" + b[8:], "wrong magic"),
    (lambda b: _reseal(b[HEADER.size:], version=FORMAT_VERSION + 1),
     f"format version {FORMAT_VERSION + 1} is not supported"),
    (lambda b: _reseal(b[HEADER.size:], version=1),
     "format version 1 is not supported .*reads version 4; older payloads lack launches"),
    (lambda b: _reseal(b[HEADER.size:], version=2),
     "format version 2 is not supported .*reads version 4; older payloads lack launches, "
     "image shapes or PARAMS words"),
    (lambda b: _reseal(b[HEADER.size:], version=3),
     "format version 3 is not supported .*reads version 4; older payloads lack launches, "
     "image shapes or PARAMS words"),
    (lambda b: _reseal(b[HEADER.size:-4] + struct.pack("<I", 3)),
     "payload malformed: 3 image input shapes for 2 inputs"),
    (lambda b: _reseal(b[HEADER.size:] + b"\0"), "trailing bytes after the image shapes"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 0x40]), "checksum mismatch"),
    (lambda b: b[:-10], "truncated"),
    (lambda b: b[:20], "truncated"),
    (lambda b: _reseal(b[HEADER.size:-3]), "truncated while reading"),
])
def test_bad_payloads_fail_at_session_creation(tmp_path, damage, match):
    path = write_program_model(_gelu_program(), tmp_path / "m.onnx")
    blob = _ctx_attr(onnx.load(str(path))).s
    bad = _with_payload(path, damage(blob), tmp_path / "bad.onnx")
    with pytest.raises(Exception, match=match):
        plugin_session(bad)


def _renamed_kernel(blob: bytes, old: bytes, new: bytes, version: int | None = None) -> bytes:
    body = blob[HEADER.size:]
    at = body.index(struct.pack("<I", len(old)) + old)
    end = at + 4 + len(old)
    body = body[:at] + struct.pack("<I", len(new)) + new + body[end:]
    if version is not None:
        v = at + 4 + len(new)
        body = body[:v] + struct.pack("<I", version) + body[v + 4:]
    return _reseal(body)


def test_unknown_stage_kind_fails_at_compile(tmp_path):
    path = write_program_model(_gelu_program(), tmp_path / "m.onnx")
    blob = _renamed_kernel(_ctx_attr(onnx.load(str(path))).s, b"gelu", b"swish")
    with pytest.raises(Exception, match="stage kind 'swish' is unknown"):
        plugin_session(_with_payload(path, blob, tmp_path / "bad.onnx"))


def test_unknown_kernel_version_fails_at_compile(tmp_path):
    path = write_program_model(_gelu_program(), tmp_path / "m.onnx")
    blob = _renamed_kernel(_ctx_attr(onnx.load(str(path))).s, b"gelu", b"gelu", version=99)
    with pytest.raises(Exception, match="kernel version 99"):
        plugin_session(_with_payload(path, blob, tmp_path / "bad.onnx"))


def test_epcontext_of_another_source_is_not_claimed(tmp_path):
    path = write_program_model(_gelu_program(), tmp_path / "m.onnx")
    model = onnx.load(str(path))
    node = model.graph.node[0]
    next(a for a in node.attribute if a.name == "source").s = b"OtherExecutionProvider"
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(Exception, match="EPContext"):  # nothing can run it: ORT refuses
        plugin_session(tmp_path / "other.onnx")


def test_payload_writer_refuses_unencodable_attrs():
    prog = one_stage_program("g", "gelu", [T("x", "int8", (2,)), T("xs", "float32", (1,))],
                             [T("y", "int8", (2,)), T("ys", "float32", (1,))],
                             attrs={"dynamic": True, "extra": {"a": 1}})
    with pytest.raises(PayloadError, match="no payload encoding"):
        payload_bytes(prog)


# -- a compiled model: partition + quantize + compile -> EPContext -> plugin ----------------------
@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    onnx.save(encoder_layer(d=256, heads=4, ffn=1024, t=200, front_end=True, mels=80),
              str(d / "m.onnx"))
    x = np.random.default_rng(3).standard_normal((1, 80, 400)).astype(np.float32)
    return d, x


@pytest.mark.parametrize("quantization", ["dynamic", "static"])
def test_compiled_encoder_layer_equals_python_session(encoder, quantization, tmp_path):
    d, x = encoder
    opts = {"cache_dir": str(d / "cache"), "quantization": quantization}
    if quantization == "static":
        np.savez(tmp_path / "calib.npz", input_features=x * 0.9)
        opts["calibration"] = str(tmp_path / "calib.npz")
    out = compile_to_epcontext(d / "m.onnx", tmp_path / "m_ctx.onnx",
                               options={**opts, "report": str(tmp_path / "r.json")})
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert "EPContext" in ops and (tmp_path / "r.json").is_file()
    sess = plugin_session(out, {"device": "emulator", "num_threads": "2"})
    assert sess.get_providers() == [EP, "CPUExecutionProvider"]
    got = sess.run(None, {"input_features": x})
    ref = xdna_ep.InferenceSession(str(d / "m.onnx"), providers=[EP],
                                   provider_options=[{**opts, "device": "emulator"}])
    want = ref.run(None, {"input_features": x})
    assert all(g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))


def test_outputs_map_by_name_when_cpu_nodes_consume_some(tmp_path):
    """ONNX Runtime orders a fused node's outputs its own way (graph outputs and
    outside consumers); the plugin maps them by name, not by position."""
    from plugin_support import region_model

    from xdna_ep.ort.epcontext import epcontext_model
    from xdna_ep.runtime import EmulatorDevice

    prog = one_stage_program("q", "quantize", [T("x", "float32", (3, 8))],
                             [T("q", "int8", (3, 8)), T("qs", "float32", (1,))],
                             attrs={"dynamic": True})
    model, programs = region_model(prog)
    g = model.graph
    g.node.append(helper.make_node("Cast", ["q"], ["qf"], to=onnx.TensorProto.FLOAT, name="cast"))
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("qs", onnx.TensorProto.FLOAT, [1]),
                     helper.make_tensor_value_info("qf", onnx.TensorProto.FLOAT, [3, 8])])
    onnx.save(epcontext_model(model, programs), str(tmp_path / "m.onnx"))
    x = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32) * 5
    qs, qf = plugin_session(tmp_path / "m.onnx").run(None, {"x": x})
    want = EmulatorDevice().load(prog).run({"x": x})
    assert qs.tobytes() == want["qs"].tobytes()
    assert qf.tobytes() == want["q"].astype(np.float32).tobytes()


def test_one_session_runs_from_several_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from xdna_ep.runtime import EmulatorDevice

    w = np.random.default_rng(4).integers(-127, 128, (64, 96), dtype=np.int8)
    prog = one_stage_program("mm", "matmul", [T("a", "float32", ("M", 64))],
                             [T("y", "float32", ("M", 96))],
                             consts={"weight": w, "w_scale": np.full(96, 0.01, np.float32)},
                             attrs={"in_scale": 0.05, "out": "float32"})
    sess = plugin_session(write_program_model(prog, tmp_path / "mm.onnx"))
    xs = [np.random.default_rng(i).standard_normal((33 + i, 64)).astype(np.float32)
          for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: sess.run(None, {"a": x})[0], xs))
    loaded = EmulatorDevice().load(prog)
    for x, g in zip(xs, got, strict=True):
        assert g.tobytes() == loaded.run({"a": x})["y"].tobytes()


def test_profiling_and_iobinding_see_the_region_under_xdna(tmp_path):
    import json

    import onnxruntime as ort

    import xdna_ep as _xdna

    prog = _gelu_program()
    path = write_program_model(prog, tmp_path / "g.onnx")
    _xdna.register()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    so.add_provider_for_devices([d for d in ort.get_ep_devices() if d.ep_name == EP],
                                {"device": "emulator"})
    sess = ort.InferenceSession(str(path), sess_options=so)
    binding = sess.io_binding()
    for name, value in FEEDS.items():
        binding.bind_cpu_input(name, value)
    for t in prog.outputs:
        binding.bind_output(t.name)
    sess.run_with_iobinding(binding)
    y, ys = binding.copy_outputs_to_cpu()
    plain = sess.run(None, FEEDS)
    assert y.tobytes() == plain[0].tobytes() and ys.tobytes() == plain[1].tobytes()
    events = json.loads(Path(sess.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    assert nodes and {e["args"]["provider"] for e in nodes} == {EP}
