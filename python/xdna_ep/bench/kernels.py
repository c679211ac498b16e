"""`xdna-ep bench kernels`: the emulator's int8 kernels against float32 and
onnxruntime on Whisper shapes, in one run on this machine.

For each matmul shape [M, K, N] it times (median of --repeats after a
warm-up): the emulator's matmul stage (int8 in, per-channel int8 weights,
int8 requantized output, the in-region case), numpy float32 matmul,
onnxruntime CPU MatMul (float32) and MatMulInteger (u8 x s8). GOPS count
2*M*K*N operations. All figures are CPU speeds: no NPU is involved.
Attention (6 heads x 1500 x 64) runs through the kernel registry when the
attention kernel is present.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

MATMUL_SHAPES: tuple[tuple[int, int, int], ...] = (
    (1500, 384, 384), (1500, 384, 1536), (1500, 1536, 384), (1, 384, 51864),
)
ATTENTION = {"heads": 6, "frames": 1500, "head_dim": 64}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kernels", help="int8 kernels vs numpy float32 and onnxruntime "
                                       "on Whisper shapes")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--path", default="auto",
                   help="emulator kernel path: auto (best this CPU runs), portable, avx2, "
                        "avx512_vnni or amx")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for the emulator and onnxruntime (default: all cores)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    p.add_argument("--no-ort", action="store_true", help="skip the onnxruntime baselines")
    p.set_defaults(run=run)


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (page faults, thread pool start, BLAS init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ort_session(kind: str, K: int, N: int, w: np.ndarray, threads: int) -> Any:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    if kind == "fp32":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", K])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", N])
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
        inits = [numpy_helper.from_array(w.astype(np.float32), "w")]
    else:
        x = helper.make_tensor_value_info("x", TensorProto.UINT8, ["M", K])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, ["M", N])
        nodes = [helper.make_node("MatMulInteger", ["x", "w", "x_zp"], ["y"])]
        inits = [numpy_helper.from_array(w, "w"),
                 numpy_helper.from_array(np.array(128, np.uint8), "x_zp")]
    graph = helper.make_graph(nodes, f"bench_{kind}", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _gops(ops: float, seconds: float) -> float:
    return ops / seconds / 1e9


def bench_matmul(M: int, K: int, N: int, repeats: int, threads: int, ort_too: bool,
                 rng: np.random.Generator) -> dict[str, Any]:
    from ..kernel_specs import matmul as mm

    w = rng.integers(-127, 128, (K, N), dtype=np.int8)
    a = rng.integers(-127, 128, (M, K), dtype=np.int8)
    consts = {"weight": w, "w_scale": rng.uniform(1e-3, 1e-2, N).astype(np.float32),
              "bias": rng.normal(0, 1, N).astype(np.float32)}
    ops = 2.0 * M * K * N
    row: dict[str, Any] = {"shape": [M, K, N]}
    for out in ("int8", "float32"):
        attrs = {"out": out, "in_scale": 0.02, "out_scale": 0.5}
        state = mm.prepare(consts, attrs)
        secs = _median_seconds(lambda s=state, at=attrs: mm.run(s, [a], at), repeats)
        key = "emulator_gops" if out == "int8" else "emulator_f32_out_gops"
        row[key] = _gops(ops, secs)
    af, wf = a.astype(np.float32), w.astype(np.float32)
    row["numpy_fp32_gops"] = _gops(ops, _median_seconds(lambda: af @ wf, repeats))
    row["ratio_vs_numpy_fp32"] = row["emulator_gops"] / row["numpy_fp32_gops"]
    if ort_too:
        s32 = _ort_session("fp32", K, N, w, threads)
        row["ort_fp32_gops"] = _gops(ops, _median_seconds(
            lambda: s32.run(None, {"x": af}), repeats))
        s8 = _ort_session("int8", K, N, w, threads)
        au = (a.astype(np.int16) + 128).astype(np.uint8)
        row["ort_matmulinteger_gops"] = _gops(ops, _median_seconds(
            lambda: s8.run(None, {"x": au}), repeats))
        row["ratio_vs_ort_fp32"] = row["emulator_gops"] / row["ort_fp32_gops"]
        row["ratio_vs_ort_matmulinteger"] = row["emulator_gops"] / row["ort_matmulinteger_gops"]
    return row


def _numpy_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    s = np.matmul(q, k.transpose(0, 2, 1)) * np.float32(scale)
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.matmul(p, v)


def bench_attention(repeats: int, rng: np.random.Generator) -> dict[str, Any]:
    from ..kernel_specs import registry

    H, T, D = ATTENTION["heads"], ATTENTION["frames"], ATTENTION["head_dim"]
    result: dict[str, Any] = {"heads": H, "frames": T, "head_dim": D}
    try:
        importlib.import_module("xdna_ep.kernel_specs.attention")
    except ModuleNotFoundError as exc:
        if exc.name != "xdna_ep.kernel_specs.attention":
            raise
    spec = registry.KERNELS.get("attention")
    if spec is None:
        result.update(available=False, reason="attention kernel is not available yet")
        return result
    q, k, v = (rng.integers(-127, 128, (1, T, H * D), dtype=np.int8) for _ in range(3))
    attrs = {"num_heads": H, "softmax_scale": 1.0 / math.sqrt(D), "causal": False,
             "q_scale": 0.05, "k_scale": 0.05, "v_scale": 0.05, "out": "int8",
             "out_scale": 0.05}
    ops = 2.0 * spec.macs([q.shape, k.shape, v.shape], {}, attrs)
    state = spec.prepare({}, attrs)
    secs = _median_seconds(lambda: spec.run(state, [q, k, v], attrs), repeats)
    qf, kf, vf = (x.reshape(T, H, D).transpose(1, 0, 2).astype(np.float32) * np.float32(0.05)
                  for x in (q, k, v))
    nsecs = _median_seconds(lambda: _numpy_attention(qf, kf, vf, 1.0 / math.sqrt(D)), repeats)
    result.update(available=True, emulator_gops=_gops(ops, secs),
                  numpy_fp32_gops=_gops(ops, nsecs), ratio_vs_numpy_fp32=nsecs / secs,
                  emulator_ms=secs * 1e3, numpy_fp32_ms=nsecs * 1e3)
    return result


def run(args: argparse.Namespace) -> int:
    from .. import _emulator  # imported here: building the CLI parser stays cheap

    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    previous_path, previous_threads = _emulator.active_kernel_path(), _emulator.num_threads()
    try:
        try:
            _emulator.set_kernel_path(args.path)
        except (ValueError, RuntimeError) as exc:
            raise SystemExit(f"--path: {exc}") from None
        if args.threads is not None:
            if args.threads < 1:
                raise SystemExit("--threads must be >= 1")
            _emulator.set_num_threads(args.threads)
        threads = _emulator.num_threads()
        rng = np.random.default_rng(0)
        rows = []
        for M, K, N in MATMUL_SHAPES:
            rows.append(bench_matmul(M, K, N, args.repeats, threads, not args.no_ort, rng))
            if not args.json:
                _print_row(rows[-1])
        attention = bench_attention(args.repeats, rng)
        report = {
            "kernel_path": _emulator.active_kernel_path(), "threads": threads,
            "repeats": args.repeats, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "matmul": rows, "attention": attention,
            "note": "CPU measurements of the host emulator; no NPU was used",
        }
    finally:
        _emulator.set_kernel_path(previous_path)
        _emulator.set_num_threads(previous_threads)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_attention(attention)
        print(f"kernel path {report['kernel_path']}, {threads} thread(s), median of "
              f"{args.repeats}; CPU figures (emulator), not NPU")
    return 0


def _print_row(r: dict[str, Any]) -> None:
    M, K, N = r["shape"]
    line = (f"matmul {M:>5}x{K:<5}x{N:<6} emulator {r['emulator_gops']:8.1f} GOPS "
            f"(f32 out {r['emulator_f32_out_gops']:7.1f})  numpy fp32 "
            f"{r['numpy_fp32_gops']:7.1f}  ratio {r['ratio_vs_numpy_fp32']:5.2f}")
    if "ort_fp32_gops" in r:
        line += (f"  | ort fp32 {r['ort_fp32_gops']:7.1f} (x{r['ratio_vs_ort_fp32']:.2f})"
                 f"  ort MatMulInteger {r['ort_matmulinteger_gops']:7.1f}"
                 f" (x{r['ratio_vs_ort_matmulinteger']:.2f})")
    print(line, flush=True)


def _print_attention(a: dict[str, Any]) -> None:
    head = f"attention {a['heads']} heads x {a['frames']} x {a['head_dim']}"
    if not a.get("available"):
        print(f"{head}: {a['reason']}")
        return
    print(f"{head}: emulator {a['emulator_ms']:.1f} ms ({a['emulator_gops']:.1f} GOPS)  "
          f"numpy fp32 {a['numpy_fp32_ms']:.1f} ms ({a['numpy_fp32_gops']:.1f} GOPS)  "
          f"ratio {a['ratio_vs_numpy_fp32']:.2f}")
