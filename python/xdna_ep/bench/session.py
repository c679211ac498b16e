"""`xdna-ep bench session`: session start cost (compile vs cache) and the cost of
one region call through ONNX Runtime and the plugin library versus the same
program called directly.

Figures are host (emulator) figures: nothing here runs on an NPU.

    first_start_s           partition + quantize + compile + rewrite + ORT init
    cached_start_s          the same model again, compiled model taken from the cache
    cache_speedup           first_start_s / cached_start_s  (target >= 5)
    region_call_overhead_us what XDNA adds to a region call: session.run of a
                            one-region EPContext model on the plugin library, minus the
                            program's own time (the same payload timed inside the
                            library, XdnaEpProgramRunF32), minus ONNX Runtime's floor
                            (session.run of an Identity model of the same size on the
                            CPU provider); median per round (target <= 5)
    large_call_ms           the same for a 1500x384 float32 region output

(The region call through the former onnxruntime-extensions Python bridge is
history, in docs/ARCHITECTURE.md; every region now runs in the plugin library.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EP = "XDNAExecutionProvider"


def ffn_model(layers: int = 4, t: int = 1500, d: int = 384, ff: int = 1536,
              seed: int = 0) -> onnx.ModelProto:
    """Whisper tiny.en-shaped FFN blocks (MatMul+Add -> Gelu -> MatMul+Add ->
    residual Add), a float32 model built in code (no download).

    The benchmark's own workload, kept here because the benchmark ships; the
    synthetic Whisper-like models of the tests are built in tests/synthetic/."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    cur = "x"
    for i in range(layers):
        w1 = (rng.standard_normal((d, ff)) / np.sqrt(d)).astype(np.float32)
        w2 = (rng.standard_normal((ff, d)) / np.sqrt(ff)).astype(np.float32)
        b1 = (rng.standard_normal(ff) * 0.1).astype(np.float32)
        b2 = (rng.standard_normal(d) * 0.1).astype(np.float32)
        for name, arr in ((f"w1_{i}", w1), (f"b1_{i}", b1), (f"w2_{i}", w2), (f"b2_{i}", b2)):
            inits.append(numpy_helper.from_array(arr, name))
        nodes += [
            helper.make_node("MatMul", [cur, f"w1_{i}"], [f"m1_{i}"], name=f"fc1_{i}"),
            helper.make_node("Add", [f"m1_{i}", f"b1_{i}"], [f"a1_{i}"], name=f"fc1b_{i}"),
            helper.make_node("Gelu", [f"a1_{i}"], [f"g_{i}"], name=f"gelu_{i}",
                             domain="com.microsoft"),
            helper.make_node("MatMul", [f"g_{i}", f"w2_{i}"], [f"m2_{i}"], name=f"fc2_{i}"),
            helper.make_node("Add", [f"m2_{i}", f"b2_{i}"], [f"a2_{i}"], name=f"fc2b_{i}"),
            helper.make_node("Add", [cur, f"a2_{i}"], [f"r_{i}"], name=f"res_{i}"),
        ]
        cur = f"r_{i}"
    nodes.append(helper.make_node("Relu", [cur], ["y"], name="out_relu"))
    g = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [t, d])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [t, d])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                               helper.make_opsetid("com.microsoft", 1)])


def one_region_model(t: int, d: int = 384, seed: int = 1) -> onnx.ModelProto:
    """x[t,d] -> MatMul+Add -> y: the whole graph is one region."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
    b = (rng.standard_normal(d) * 0.1).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
         helper.make_node("Add", ["m", "b"], ["y"], name="bias")], "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [t, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [t, d])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _median_s(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _paired_median_s(a: Callable[[], Any], b: Callable[[], Any], pairs: int
                     ) -> tuple[float, float, float]:
    """(median a, median b, median of a - b per pair): a and b alternate, so a
    noisy neighbour on a shared machine slows both sides of each pair alike."""
    ta, tb = [], []
    for _ in range(pairs):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return (statistics.median(ta), statistics.median(tb),
            statistics.median(x - y for x, y in zip(ta, tb, strict=True)))


def _session(model_bytes: bytes, cache_dir: str, **opts: Any):
    from ..ort import InferenceSession

    return InferenceSession(model_bytes, providers=[EP, "CPUExecutionProvider"],
                            provider_options=[{"cache_dir": cache_dir, "device": "emulator",
                                               "fallback": "error", **opts}, {}])


def _one_region_compiled(model: onnx.ModelProto):
    """(rewritten model, program, region node) of a one-region model, built
    without the cost model: the partitioner rightly keeps a 16-row matmul on the
    CPU, but here the fixed cost of a call is the point."""
    from ..compile import CompileOptions, compile_plan
    from ..partition import partition_model
    from ..rewrite import rewrite_model

    plan = partition_model(model, use_cost_model=False)
    programs = compile_plan(model, plan, CompileOptions(quantization="dynamic"))
    new, nodes = rewrite_model(model, plan, programs)
    if len(nodes) != 1:
        raise RuntimeError(f"expected one region, got {len(nodes)}")
    return new, programs[nodes[0].region], nodes[0]


class _PluginRegion:
    """A one-region model as providers=[XDNA...] sessions run it on the emulator:
    an EPContext model on the plugin library, and the same payload run by the
    library directly (no ORT) as the baseline."""

    def __init__(self, model: onnx.ModelProto) -> None:
        import onnxruntime as ort

        from ..ort.epcontext import epcontext_model, payload_bytes
        from ..ort.plugin_route import runtime_options, session_options
        from ..plugin import DirectProgram

        new, program, node = _one_region_compiled(model)
        ctx = epcontext_model(new, {node.program: program})
        so = session_options(ort.SessionOptions(), runtime_options("emulator", "error", None))
        self.sess = ort.InferenceSession(ctx.SerializeToString(), so)
        self.direct = DirectProgram(payload_bytes(program))


def _identity_session(t: int, d: int = 384):
    """ONNX Runtime's own floor: an Identity model of the region's input size on
    the CPU provider (what any session.run costs from Python)."""
    import onnxruntime as ort

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="id")], "floor",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [t, d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [t, d])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _overhead_s(region: _PluginRegion, floor: Any, x: np.ndarray, rounds: int
                ) -> tuple[float, float, float, float]:
    """(ORT run of the region, the program's own time inside the library, ORT's
    floor, overhead) as medians; the overhead per round is region run - program
    - floor, the three measured back to back so load hits them alike."""
    runs, programs, floors, over = [], [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        region.sess.run(None, {"x": x})
        t1 = time.perf_counter()
        floor.run(None, {"x": x})
        t2 = time.perf_counter()
        region.direct.run([x], x.shape)  # one_region_model: y has x's shape
        prog = region.direct.last_run_s
        runs.append(t1 - t0)
        floors.append(t2 - t1)
        programs.append(prog)
        over.append((t1 - t0) - prog - (t2 - t1))
    return (statistics.median(runs), statistics.median(programs), statistics.median(floors),
            statistics.median(over))


def measure(layers: int = 4, repeats: int = 3, calls: int = 200,
            model_path: str | None = None) -> dict[str, Any]:
    if model_path:
        with open(model_path, "rb") as f:
            mb = f.read()
        model_label = model_path
    else:
        mb = ffn_model(layers).SerializeToString()
        model_label = f"synthetic Whisper tiny.en FFN x{layers} (1500x384, ff 1536)"
    with tempfile.TemporaryDirectory(prefix="xdna-bench-") as cache_dir:
        t0 = time.perf_counter()
        first = _session(mb, cache_dir)
        first_s = time.perf_counter() - t0
        regions = first.xdna_start.regions
        del first
        cached_s = _median_s(lambda: _session(mb, cache_dir), repeats)

    # region call overhead: small call, where fixed costs dominate
    pairs = max(calls, 1000)
    x = np.random.default_rng(2).standard_normal((16, 384)).astype(np.float32)
    small = _PluginRegion(one_region_model(16))
    floor = _identity_session(16)
    small.sess.run(None, {"x": x})
    via_ort, program, floor_s, overhead = _overhead_s(small, floor, x, pairs)
    res: dict[str, Any] = {
        "model": model_label,
        "regions": regions,
        "first_start_s": round(first_s, 4),
        "cached_start_s": round(cached_s, 4),
        "cache_speedup": round(first_s / cached_s, 2),
        "region_call_overhead_us": round(overhead * 1e6, 1),
        "region_call_us": round(via_ort * 1e6, 1),
        "program_us": round(program * 1e6, 1),
        "ort_floor_us": round(floor_s * 1e6, 1),
    }
    # a 1500x384 float32 result through ORT and the plugin vs the library directly
    big = _PluginRegion(one_region_model(1500))
    xb = np.random.default_rng(3).standard_normal((1500, 384)).astype(np.float32)
    big.sess.run(None, {"x": xb})
    big_ort, big_direct, _ = _paired_median_s(lambda: big.sess.run(None, {"x": xb}),
                                              lambda: big.direct.run([xb], (1500, 384)),
                                              max(5, calls // 20))
    res["large_call_ms"] = {"ort": round(big_ort * 1e3, 3), "direct": round(big_direct * 1e3, 3)}
    res["device"] = "emulator (host CPU; not NPU figures)"
    return res


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("session", help="session start (compile vs cache) and region-call "
                                       "overhead")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--layers", type=int, default=4, help="FFN blocks in the synthetic model")
    p.add_argument("--model", default=None, help="an ONNX model instead of the synthetic one")
    p.add_argument("--repeats", type=int, default=3, help="cached starts timed (median)")
    p.add_argument("--calls", type=int, default=200, help="region calls timed (median)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.layers < 1 or args.repeats < 1 or args.calls < 1:
        raise SystemExit("--layers, --repeats and --calls must be >= 1")
    res = measure(args.layers, args.repeats, args.calls, args.model)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"model: {res['model']} ({res['regions']} NPU region(s)); device {res['device']}")
    print(f"first start  (partition+quantize+compile): {res['first_start_s']:.3f} s")
    print(f"second start (cache hit):                  {res['cached_start_s']:.3f} s")
    print(f"cache speedup: {res['cache_speedup']:.1f}x (target >= 5x)")
    print(f"region call through ORT + plugin {res['region_call_us']:.1f} us = program "
          f"{res['program_us']:.1f} us + ORT's own floor {res['ort_floor_us']:.1f} us + XDNA "
          f"overhead {res['region_call_overhead_us']:.1f} us (target <= 5 us)")
    lc = res["large_call_ms"]
    print(f"1500x384 float32 region: through ORT {lc['ort']:.3f} ms, directly "
          f"{lc['direct']:.3f} ms")
    return 0
