"""Subprocess worker for one model fuzz case (see model_mutators.write_case).

    python -m fuzz.model_worker case.json [partition|session|both]

Runs the mutated model through xdna_ep.partition.partition() and through
xdna_ep.InferenceSession(providers=["XDNAExecutionProvider",
"CPUExecutionProvider"]), and, where the session runs, compares its outputs
with plain onnxruntime on the CPU. An audit hook (sys.addaudithook) records
every Python-level open of a canary file; the parent also checks the canaries'
access times (which catch reads from C++ code) and searches every output,
message and cache file for the canary token. Prints one JSON result line.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .runner import emit

EP = "XDNAExecutionProvider"

# Exceptions that tell the user what is wrong. LookupError/AttributeError/
# AssertionError/RecursionError and friends are internal failures leaking out.
UNCLEAR = (KeyError, IndexError, AttributeError, AssertionError, RecursionError,
           ZeroDivisionError, UnboundLocalError, NameError, StopIteration, SystemError)


def _clear_types() -> tuple[type[BaseException], ...]:
    import onnx.checker
    import onnx.shape_inference
    import onnxruntime.capi.onnxruntime_pybind11_state as ortstate
    from google.protobuf.message import DecodeError

    ort_errors = tuple(getattr(ortstate, n) for n in (
        "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NoModel",
        "NotImplemented", "RuntimeException", "EngineError", "NotFound", "EPFail"))
    return (ValueError, TypeError, RuntimeError, OSError, NotImplementedError, MemoryError,
            DecodeError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError,
            *ort_errors)


class Audit:
    """Records opens of canary files (Python-level: open, os.open, io.open). Directory
    listings are not reads (the import system lists the cwd, where canaries sit)."""

    def __init__(self, canaries: list[str]) -> None:
        self.canaries = {os.path.realpath(c) for c in canaries}
        self.hits: list[str] = []
        self.frozen = False      # set before the plain-ORT reference run

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.frozen or event not in ("open", "os.listdir", "os.scandir") or not args:
            return
        p = args[0]
        if isinstance(p, int) or p is None:
            return
        try:
            real = os.path.realpath(os.fsdecode(p))
        except (TypeError, ValueError):
            return
        if real in self.canaries:
            self.hits.append(f"{event} {real}")


def _describe(exc: BaseException, clear: tuple[type[BaseException], ...]) -> dict[str, Any]:
    kind = "clear" if isinstance(exc, clear) and not isinstance(exc, UNCLEAR) else "unclear"
    msg = str(exc)
    if not msg.strip():
        kind = "unclear"
    tb = traceback.extract_tb(exc.__traceback__)
    where = [f"{Path(f.filename).name}:{f.lineno}" for f in tb if "xdna_ep" in f.filename][-3:]
    return {"status": "error", "kind": kind, "type": f"{type(exc).__module__}."
            f"{type(exc).__qualname__}", "message": msg[:600], "where": where}


def _feeds(sess: Any, spec: dict[str, list]) -> dict[str, np.ndarray]:
    """Inputs for the session: the base model's real input shapes (seeded)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        if i.name in spec:
            shape, dtype = spec[i.name]
        else:  # an input the base did not have: build it from the declared shape
            shape = [d if isinstance(d, int) and 0 < d <= 64 else 1 for d in i.shape]
            dtype = "float32"
        if dtype.startswith("float"):
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[i.name] = np.ones(shape, dtype=dtype)
    return feeds


def _compare(got: list[np.ndarray], want: list[np.ndarray], exact: bool
             ) -> tuple[str, float]:
    """(why the outputs disagree or '', worst relative L2 error of float outputs).

    With int8 regions the error is judged by the parent against the unmutated
    model's own error (quantization is not exact); on pure CPU it must be ~0."""
    worst = 0.0
    if len(got) != len(want):
        return f"{len(got)} outputs vs {len(want)}", worst
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {k}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}", worst
        if a.dtype.kind != "f":
            if not np.array_equal(a, b):
                return f"output {k}: values differ", worst
            continue
        fa, fb = np.isfinite(a), np.isfinite(b)
        if not np.array_equal(fa, fb):
            return (f"output {k}: non-finite values differ ({int((~fa).sum())} vs "
                    f"{int((~fb).sum())})"), worst
        a64, b64 = a[fa].astype(np.float64), b[fb].astype(np.float64)
        if exact:
            if not np.allclose(a64, b64, rtol=1e-5, atol=1e-5):
                return f"output {k}: max diff {np.abs(a64 - b64).max():.3g} (CPU path)", worst
            continue
        den = np.linalg.norm(b64)
        rel = float(np.linalg.norm(a64 - b64) / den if den > 0 else np.linalg.norm(a64))
        worst = max(worst, rel)
    return "", worst


def canaries_read(spec: dict[str, Any]) -> list[str]:
    """Canaries whose access time moved: read by any code, C++ included (the parent
    set each atime an hour before its mtime, so relatime updates it on a read)."""
    return [c for c in spec["canaries"]
            if os.path.exists(c) and os.stat(c).st_atime > os.stat(c).st_mtime - 1800]


def run_case(spec: dict[str, Any], mode: str) -> dict[str, Any]:
    clear = _clear_types()
    audit = Audit(spec["canaries"])
    sys.addaudithook(audit)
    rec: dict[str, Any] = {"base": spec["base"], "mutation": spec["mutation"],
                           "category": spec["category"]}
    model = spec["model"]
    texts: list[str] = []

    if mode in ("partition", "both"):
        try:
            from xdna_ep.partition import partition

            plan = partition(model)
            rec["partition"] = {"status": "ok", "regions": len(plan.regions),
                                "npu_regions": sum(r.placement == "npu" for r in plan.regions)}
        except Exception as exc:  # noqa: BLE001 - classified
            rec["partition"] = _describe(exc, clear)
            texts.append(rec["partition"]["message"])

    if mode in ("session", "both"):
        rec["session"], rec["reference"], out_bytes = _session(spec, clear, audit)
        texts += [rec["session"].get("message", ""), rec["session"].get("warnings", "")]
        if spec["token"].encode() in out_bytes:
            rec.setdefault("leaks", []).append("canary bytes in the session outputs")
    rec["audit_hits"] = audit.hits
    # judged before any plain-ORT reference run: that may read canaries by itself
    rec["canary_read"] = rec.get("session", {}).pop("canary_read", None)
    if rec["canary_read"] is None:
        rec["canary_read"] = canaries_read(spec)
    for t in texts:
        if spec["token"] in (t or ""):
            rec.setdefault("leaks", []).append("canary token in an error/warning message")
    return rec


def _session(spec: dict[str, Any], clear, audit: Audit
             ) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    import xdna_ep

    model = spec["model"]
    caught: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            sess = xdna_ep.InferenceSession(
                model, providers=[EP, "CPUExecutionProvider"],
                provider_options=[{"cache_dir": spec["cache_dir"], "device": "emulator"}, {}])
            caught = [str(x.message)[:300] for x in w]
    except Exception as exc:  # noqa: BLE001 - classified
        return _describe(exc, clear), {}, b""
    info = sess.xdna_start
    res: dict[str, Any] = {"status": "created", "source": info.source,
                           "regions": info.regions, "providers": sess.get_providers(),
                           "warnings": " | ".join(caught)[:600]}
    try:
        feeds = _feeds(sess, spec["inputs"])
        outs = sess.run(None, feeds)
        res["status"] = "ok"
    except Exception as exc:  # noqa: BLE001
        d = _describe(exc, clear)
        d.update({k: res[k] for k in ("source", "regions", "providers", "warnings")})
        return d, {}, b""
    res["canary_read"] = canaries_read(spec)
    audit.frozen = True
    ref, ref_outs = _reference(model, feeds)
    if ref_outs is not None:
        res["mismatch"], res["rel_err"] = _compare(outs, ref_outs, exact=info.regions == 0)
    blob = b"".join(np.ascontiguousarray(o).tobytes() for o in outs
                    if isinstance(o, np.ndarray))
    return res, ref, blob


def _reference(model: str, feeds: dict[str, np.ndarray]
               ) -> tuple[dict[str, Any], list[np.ndarray] | None]:
    """Plain onnxruntime on CPU: does the mutated model still run there?"""
    import onnxruntime as ort

    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        ref = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        return {"status": "ok"}, ref.run(None, feeds)
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "type": type(exc).__name__,
                "message": str(exc)[:300]}, None


def main(argv: list[str]) -> int:
    # onnxruntime.tools (imported by the capability stage's symbolic shape
    # inference) imports torch when it is installed: 2.4 s per process, unrelated
    # to what is tested here, so torch is hidden from the worker (find_spec -> None)
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]
    spec = json.loads(Path(argv[0]).read_text())
    mode = argv[1] if len(argv) > 1 else "both"
    emit(run_case(spec, mode))
    emit({"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
