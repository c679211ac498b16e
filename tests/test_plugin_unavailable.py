"""A process whose plugin library cannot be loaded runs no region (there is no other
route): a corrupt or missing libxdna_ep_provider.so, or an onnxruntime without the
plugin execution-provider API. Sessions then fail naming the library and the reason
(fallback=error, device=npu), or run the user's original FP32 model on the CPU
provider, announced: XDNAFallbackWarning, a warning log line, a fallback line and a
note in the plan and the report (fallback=allow). An EPContext model has no CPU fallback at
all: an error in both modes. Never silently.

Each case runs in a fresh interpreter: the library is registered (or refused) once
per process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# how each case breaks the library, before xdna_ep registers it
BREAK = {
    # a file that is no shared library at the library's place
    "corrupt": """
bad = Path({tmp!r}) / "libxdna_ep_provider.so"
bad.write_bytes(b"not an ELF file")
plugin.library_path = lambda: bad
""",
    # the library was never built
    "missing": """
plugin.library_path = lambda: Path({tmp!r}) / "libxdna_ep_provider.so"
""",
    # an onnxruntime older than the plugin execution-provider API
    "old-onnxruntime": """
del ort.register_execution_provider_library
""",
}

PROBE = r"""
import json, logging, sys, warnings
from pathlib import Path
sys.path.insert(0, {tests!r})
import numpy as np
import onnxruntime as ort
from xdna_ep import plugin
{breaker}
from test_ort_support import big_linear_model
from xdna_ep.ort import InferenceSession
from xdna_ep.ort.errors import XDNAFallbackWarning, XDNAUnavailableError

logs = []
class Keep(logging.Handler):
    def emit(self, record):
        logs.append((record.levelname, record.getMessage()))
logging.getLogger("xdna_ep").addHandler(Keep())

lm = big_linear_model(two_regions=True)
x = np.random.default_rng(3).standard_normal((256, 384)).astype(np.float32)
res = {{}}

def session(**opts):
    return InferenceSession(lm.model.SerializeToString(),
                            providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
                            provider_options=[{{"cache_dir": {cache!r}, **opts}}, {{}}])

for name, opts in (("error", {{"device": "emulator", "fallback": "error"}}),
                   ("npu", {{"device": "npu"}})):
    try:
        session(**opts)
        res[name] = None
    except XDNAUnavailableError as exc:
        res[name] = str(exc)

report = Path({cache!r}) / "report.json"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sess = session(device="auto", fallback="allow", report=str(report))
res["warnings"] = [str(w.message) for w in caught if w.category is XDNAFallbackWarning]
res["source"] = sess.xdna_start.source
res["providers"] = sess.get_providers()
res["native"] = sess._xdna_native
y, z = sess.run(None, {{"x": x}})
cpu = ort.InferenceSession(lm.model.SerializeToString(), providers=["CPUExecutionProvider"])
want = cpu.run(None, {{"x": x}})
res["same_as_cpu"] = bool(np.array_equal(y, want[0]) and np.array_equal(z, want[1]))
res["report"] = json.loads(report.read_text())
res["plan_fallbacks"] = list(sess.xdna_plan.fallbacks) if sess.xdna_plan else None
res["plan_notes"] = list(sess.xdna_plan.notes) if sess.xdna_plan else None
res["warning_logs"] = [m for lvl, m in logs if lvl == "WARNING"]
res["cache_entries"] = sorted(p.name for p in Path({cache!r}).iterdir()
                              if p.name != "report.json" and p.is_dir())
# an EPContext model (xdna-ep compile): the CPU provider cannot run it, so even
# fallback=allow is an error saying so
import onnx
from xdna_ep.ort.compile_cli import compile_to_epcontext
src = Path({cache!r}) / "lm.onnx"
onnx.save(lm.model, src)
ctx = compile_to_epcontext(src, Path({cache!r}) / "lm_ctx.onnx",
                           options={{"cache_dir": str(Path({cache!r}) / "compile")}})
try:
    InferenceSession(str(ctx), providers=["XDNAExecutionProvider"],
                     provider_options=[{{"device": "emulator", "fallback": "allow"}}])
    res["epcontext"] = None
except XDNAUnavailableError as exc:
    res["epcontext"] = str(exc)
print("PROBE", json.dumps(res))
"""

REASON = {
    "corrupt": "libxdna_ep_provider.so cannot be loaded",
    "missing": "is not built",
    "old-onnxruntime": "has no plugin execution-provider API",
}


@pytest.mark.parametrize("case", sorted(BREAK))
def test_without_the_plugin_library_sessions_fail_or_fall_back_announced(case, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    breaker = BREAK[case].format(tmp=str(tmp_path))
    code = PROBE.format(tests=str(TESTS), breaker=breaker, cache=str(cache))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")][-1]
    res = json.loads(line[len("PROBE "):])
    lib = str(tmp_path / "libxdna_ep_provider.so") if case != "old-onnxruntime" else \
        "libxdna_ep_provider.so"
    # fallback=error and device=npu: a clear error naming the library and why
    for name in ("error", "npu"):
        msg = res[name]
        assert msg is not None, f"{name}: the session started without a plugin library"
        assert lib in msg and REASON[case] in msg, msg
    assert "fallback=error" in res["error"]
    assert "device=npu is not available" in res["npu"]
    # fallback=allow: the original model on the CPU provider, announced everywhere
    assert res["source"] == "cpu-fallback" and res["native"] is False
    assert res["providers"] == ["CPUExecutionProvider"]
    assert res["same_as_cpu"] is True  # the FP32 CPU nodes, not INT8 programs
    assert len(res["warnings"]) == 1 and lib in res["warnings"][0]
    assert "runs on CPUExecutionProvider" in res["warnings"][0]
    assert any(lib in m and REASON[case] in m for m in res["warning_logs"])
    for lines in (res["plan_fallbacks"], res["plan_notes"], res["report"]["fallbacks"],
                  res["report"]["notes"]):
        assert any(lib in ln and "run on CPUExecutionProvider instead" in ln
                   for ln in lines), lines
    assert res["report"]["npu_mac_share"] == 0
    assert all(n["placement"] == "cpu" for n in res["report"]["nodes"])
    assert any("no runner" in n["reason"] for n in res["report"]["nodes"])
    assert res["cache_entries"] == []  # nothing was compiled for a process that cannot run it
    ctx = res["epcontext"]
    assert ctx is not None and lib in ctx and "EPContext payloads" in ctx, ctx
    assert "CPU provider cannot run EPContext nodes" in ctx
