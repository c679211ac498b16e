"""The run path imports neither torch nor transformers (each costs seconds per start),
and a session on the emulator runs on the plugin library, without onnxruntime-extensions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PROBE = r"""
import json, sys
sys.path.insert(0, {tests!r})
import numpy as np
from test_ort_support import big_linear_model
from xdna_ep.ort import InferenceSession

lm = big_linear_model(two_regions=True)
heavy_before = [m for m in ("torch", "transformers") if m in sys.modules]
sess = InferenceSession(lm.model.SerializeToString(),
                        providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
                        provider_options=[{{"cache_dir": {cache!r}}}, {{}}])
x = np.random.default_rng(0).standard_normal((256, 384)).astype(np.float32)
sess.run(None, {{"x": x}})
ortx_on_run_path = "onnxruntime_extensions" in sys.modules
lean = [m for m in ("torch", "transformers") if m in sys.modules]
# the NPU route's bridge loads only onnxruntime_extensions._ocos, and the full
# package still loads on demand behind it
from xdna_ep.lean_import import ortx_ocos
ortx_ocos()
bridge_lean = [m for m in ("torch", "transformers") if m in sys.modules]
import onnxruntime_extensions as ortx
full = callable(ortx.gen_processing_models)
print(json.dumps({{"regions": sess.xdna_start.regions, "before": heavy_before,
                  "providers": sess.get_providers(), "ortx": ortx_on_run_path,
                  "after_run": lean, "bridge": bridge_lean, "full_package": full}}))
"""


def test_session_compile_and_run_import_no_torch_or_transformers(tmp_path):
    code = PROBE.format(tests=str(TESTS), cache=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["regions"] == 2  # the region op and shape inference really ran
    assert doc["before"] == [] and doc["after_run"] == [] and doc["bridge"] == []
    assert doc["providers"] == ["XDNAExecutionProvider", "CPUExecutionProvider"]
    assert doc["ortx"] is False  # regions ran in the plugin library
    assert doc["full_package"] is True
