"""The cost model's CPU side, measured on the host it runs on.

The CPU alternative to an NPU region is ONNX Runtime's CPU provider running the
float32 graph, and a laptop's 8 Zen 4 cores are not a 2-core server: the
figures come from a one-time micro-benchmark of ONNX Runtime itself on this
machine (float32 GEMM, INT8 GEMM via MatMulInteger, float32 GEMV, an
element-wise Add, and the per-node dispatch of a chain of tiny nodes; about
0.1-0.3 s), cached per machine in `<cache>/host/<key>.json`, the key being the
CPU model and the core count.

Precedence: figures injected with `set_host_figures()` (tests make the model
deterministic this way), then `XDNA_EP_CPU_FIGURES`
("gemm=97e9,gemv=3.5e9,elements=1e9,dispatch=5e-6", any subset; the rest are
the documented constants), then the cache, then a fresh measurement. If
measuring fails the documented constants of cost.CpuCostModel are used and
the log says so.

Why not a benchmark library: pyperf / pytest-benchmark measure Python
callables with warm-up and statistics far beyond a one-shot, sub-second
estimate; the timing here is a best-of-N loop over ONNX Runtime sessions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .cost import CpuCostModel

log = logging.getLogger("xdna_ep")

FORMAT = 1
_LOCK = threading.Lock()
_INJECTED: CpuCostModel | None = None
_MEASURED: CpuCostModel | None = None

# benchmark sizes: big enough to reach GEMM speed, small enough for ~0.1 s
GEMM_M, GEMM_K, GEMM_N = 256, 512, 512
GEMV_K, GEMV_N = 512, 2048
ADD_ELEMENTS = 1 << 20
DISPATCH_NODES = 32


@dataclass(frozen=True)
class HostFigures:
    """What one micro-benchmark measured (stored in the per-machine cache)."""

    cpu: str
    cores: int
    fp32_gemm_macs_per_s: float
    int8_gemm_macs_per_s: float
    fp32_gemv_macs_per_s: float
    elements_per_s: float
    node_dispatch_s: float
    seconds: float  # how long measuring took
    format: int = FORMAT

    def cost_model(self, source: str) -> CpuCostModel:
        return CpuCostModel(
            name=f"{self.cpu}, {self.cores} cores, ONNX Runtime CPU float32 ({source})",
            gemm_macs_per_s=self.fp32_gemm_macs_per_s,
            gemv_macs_per_s=self.fp32_gemv_macs_per_s,
            elements_per_s=self.elements_per_s, node_dispatch_s=self.node_dispatch_s,
            int8_gemm_macs_per_s=self.int8_gemm_macs_per_s)


def cpu_name() -> str:
    """The CPU model (/proc/cpuinfo "model name", else platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def host_key() -> str:
    """The cache key of this machine: CPU model + core count."""
    return hashlib.sha256(f"{cpu_name()}|{os.cpu_count()}".encode()).hexdigest()[:16]


def default_host_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("XDNA_EP_HOST_CACHE") or os.path.join(base, "xdna-ep", "host"))


def _models() -> dict[str, bytes]:
    """One small ONNX model per measured figure."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def model(nodes, inputs, outputs, inits=()) -> bytes:
        g = helper.make_graph(nodes, "hostbench", inputs, outputs, list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m.SerializeToString()

    def vi(name, dtype, shape):
        return helper.make_tensor_value_info(name, dtype, shape)

    w = numpy_helper.from_array(rng.standard_normal((GEMM_K, GEMM_N)).astype(np.float32), "w")
    wq = numpy_helper.from_array(rng.integers(-127, 128, (GEMM_K, GEMM_N), dtype=np.int8), "wq")
    wv = numpy_helper.from_array(rng.standard_normal((GEMV_K, GEMV_N)).astype(np.float32), "wv")
    chain = [helper.make_node("Add", [f"t{i}", "one"], [f"t{i + 1}"])
             for i in range(DISPATCH_NODES)]
    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    return {
        "gemm": model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                      [vi("x", TensorProto.FLOAT, [GEMM_M, GEMM_K])],
                      [vi("y", TensorProto.FLOAT, None)], [w]),
        "int8": model([helper.make_node("MatMulInteger", ["x", "wq"], ["y"])],
                      [vi("x", TensorProto.INT8, [GEMM_M, GEMM_K])],
                      [vi("y", TensorProto.INT32, None)], [wq]),
        "gemv": model([helper.make_node("MatMul", ["x", "wv"], ["y"])],
                      [vi("x", TensorProto.FLOAT, [1, GEMV_K])],
                      [vi("y", TensorProto.FLOAT, None)], [wv]),
        "add": model([helper.make_node("Add", ["x", "x"], ["y"])],
                     [vi("x", TensorProto.FLOAT, [ADD_ELEMENTS])],
                     [vi("y", TensorProto.FLOAT, None)]),
        "dispatch": model(chain, [vi("t0", TensorProto.FLOAT, [1])],
                          [vi(f"t{DISPATCH_NODES}", TensorProto.FLOAT, None)], [one]),
    }


def _best(run, reps: int) -> float:
    run()  # warm-up (allocations, thread pool)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-9)


def measure() -> HostFigures:
    """Run the micro-benchmark now (ONNX Runtime CPU provider, default threads)."""
    import onnxruntime as ort

    t_start = time.perf_counter()
    models = _models()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    feeds = {
        "gemm": {"x": np.ones((GEMM_M, GEMM_K), np.float32)},
        "int8": {"x": np.ones((GEMM_M, GEMM_K), np.int8)},
        "gemv": {"x": np.ones((1, GEMV_K), np.float32)},
        "add": {"x": np.ones((ADD_ELEMENTS,), np.float32)},
        "dispatch": {"t0": np.zeros((1,), np.float32)},
    }
    times: dict[str, float] = {}
    for name, blob in models.items():
        sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        feed = feeds[name]
        times[name] = _best(lambda s=sess, f=feed: s.run(None, f), reps=5)
    gemm_macs = GEMM_M * GEMM_K * GEMM_N
    return HostFigures(
        cpu=cpu_name(), cores=int(os.cpu_count() or 1),
        fp32_gemm_macs_per_s=gemm_macs / times["gemm"],
        int8_gemm_macs_per_s=gemm_macs / times["int8"],
        fp32_gemv_macs_per_s=GEMV_K * GEMV_N / times["gemv"],
        elements_per_s=ADD_ELEMENTS / times["add"],
        node_dispatch_s=times["dispatch"] / DISPATCH_NODES,
        seconds=time.perf_counter() - t_start)


def load_or_measure(cache_dir: Path | None = None) -> tuple[HostFigures, str]:
    """(figures, "cache" | "measured") for this machine; the cache file is
    rewritten when missing, unreadable or from another format."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_host_cache_dir()
    path = cache_dir / f"{host_key()}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        figures = HostFigures(**doc)
        if figures.format == FORMAT and figures.cpu == cpu_name() and all(
                v > 0 for v in (figures.fp32_gemm_macs_per_s, figures.fp32_gemv_macs_per_s,
                                figures.elements_per_s, figures.node_dispatch_s)):
            return figures, "cache"
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError) as exc:
        log.warning("xdna-ep: host benchmark cache %s unreadable (%s); measuring again", path,
                    exc)
    figures = measure()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(figures), indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.warning("xdna-ep: cannot write the host benchmark cache %s (%s)", path, exc)
    log.info("xdna-ep: host CPU measured in %.2f s: float32 GEMM %.1f GMAC/s, INT8 GEMM "
             "%.1f GMAC/s, GEMV %.2f GMAC/s (cached in %s)", figures.seconds,
             figures.fp32_gemm_macs_per_s / 1e9, figures.int8_gemm_macs_per_s / 1e9,
             figures.fp32_gemv_macs_per_s / 1e9, path)
    return figures, "measured"


_ENV_KEYS = {"gemm": "gemm_macs_per_s", "gemv": "gemv_macs_per_s", "int8": "int8_gemm_macs_per_s",
             "elements": "elements_per_s", "dispatch": "node_dispatch_s"}


def figures_from_env(value: str) -> CpuCostModel:
    """`XDNA_EP_CPU_FIGURES` ("gemm=97e9,gemv=3.5e9,...") over the constants."""
    kw: dict[str, float] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, _, num = part.partition("=")
        field_name = _ENV_KEYS.get(key.strip())
        try:
            number = float(num)
        except ValueError:
            number = -1.0
        if field_name is None or not number > 0:
            raise ValueError(f"XDNA_EP_CPU_FIGURES={value!r}: expected name=positive number "
                             f"with names {sorted(_ENV_KEYS)}")
        kw[field_name] = number
    return replace(CpuCostModel(), name="host CPU figures from XDNA_EP_CPU_FIGURES", **kw)


def set_host_figures(cpu: CpuCostModel | None) -> None:
    """Use `cpu` as the host figures in this process (None: measure again)."""
    global _INJECTED
    with _LOCK:
        _INJECTED = cpu


def host_cpu_model() -> CpuCostModel:
    """The cost model's CPU side for this process (precedence: module docstring)."""
    global _MEASURED
    with _LOCK:
        if _INJECTED is not None:
            return _INJECTED
        env = os.environ.get("XDNA_EP_CPU_FIGURES")
        if env:
            return figures_from_env(env)
        if _MEASURED is None:
            try:
                figures, source = load_or_measure()
                _MEASURED = figures.cost_model(source)
            except Exception as exc:  # noqa: BLE001 - the constants remain usable
                log.warning("xdna-ep: host CPU benchmark failed (%s: %s); the cost model uses "
                            "the documented constants (docs/COST_MODEL.md)",
                            type(exc).__name__, exc)
                _MEASURED = CpuCostModel()
        return _MEASURED
