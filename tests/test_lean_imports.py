"""The run path imports neither torch nor transformers (each costs seconds per start),
and no route needs onnxruntime-extensions: every probe runs in a fresh interpreter
where a meta-path blocker makes `onnxruntime_extensions` look NOT installed (and
records any attempt to import it), on the emulator, on the NPU through the plugin's
native backend (built against the FAKE XRT library, not XRT) and through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from npu_support import FakeNpu

from xdna_ep.whisper.samples import list_samples

TESTS = Path(__file__).resolve().parent

# installed first in every probe: onnxruntime_extensions cannot be found, as if the
# package were not installed, and every attempt to import it is recorded
BLOCKER = r"""
import importlib.abc, json, sys
sys.path.insert(0, {tests!r})
ATTEMPTS = []

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "onnxruntime_extensions":
            ATTEMPTS.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)",
                                      name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
try:
    import onnxruntime_extensions  # noqa: F401
    BLOCKED = False
except ModuleNotFoundError:
    BLOCKED = True
ATTEMPTS.clear()
"""

EMULATOR = r"""
import numpy as np
import xdna_ep, xdna_ep.ort, xdna_ep.cli  # the package imports without the extensions
from test_ort_support import big_linear_model
from xdna_ep.ort import InferenceSession

lm = big_linear_model(two_regions=True)
heavy_before = [m for m in ("torch", "transformers") if m in sys.modules]
sess = InferenceSession(lm.model.SerializeToString(),
                        providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
                        provider_options=[{{"cache_dir": {cache!r}, "device": "emulator",
                                            "fallback": "error"}}, {{}}])
x = np.random.default_rng(0).standard_normal((256, 384)).astype(np.float32)
y = sess.run(None, {{"x": x}})[0]
print("PROBE", json.dumps({{"blocked": BLOCKED, "attempts": ATTEMPTS, "regions": sess.xdna_start.regions,
                  "native": sess._xdna_native, "before": heavy_before,
                  "providers": sess.get_providers(),
                  "after_run": [m for m in ("torch", "transformers") if m in sys.modules],
                  "close": bool(np.abs(y - lm.fp32(x)["y"]).max()
                                < 0.05 * np.abs(lm.fp32(x)["y"]).max()),
                  "ortx": "onnxruntime_extensions" in sys.modules}}))
"""

NPU = r"""
import numpy as np
from test_ort_support import big_linear_model
from xdna_ep.ort import InferenceSession
lm = big_linear_model(two_regions=True)
sess = InferenceSession(lm.model.SerializeToString(), providers=["XDNAExecutionProvider"],
                        provider_options=[{{"cache_dir": {cache!r}, "device": "npu",
                                            "fallback": "error"}}])
x = np.random.default_rng(5).standard_normal((256, 384)).astype(np.float32)
sess.run(None, {{"x": x}})
print("PROBE", json.dumps({{"blocked": BLOCKED, "attempts": ATTEMPTS, "device": sess.xdna_start.device,
                  "native": sess._xdna_native,
                  "ortx": "onnxruntime_extensions" in sys.modules}}))
"""

CLI = r"""
from xdna_ep.cli import main
rc = main({argv!r})
print("PROBE", json.dumps({{"blocked": BLOCKED, "attempts": ATTEMPTS, "rc": rc,
                  "ortx": "onnxruntime_extensions" in sys.modules}}))
"""


def _probe(body: str, env: dict[str, str] | None = None, **fields: object
           ) -> tuple[dict, str]:
    """(the probe's JSON line, its stdout) from a fresh interpreter with the blocker."""
    code = BLOCKER.format(tests=str(TESTS)) + body.format(**fields)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")][-1]
    return json.loads(line[len("PROBE "):]), out.stdout


def test_emulator_route_needs_neither_torch_nor_onnxruntime_extensions(tmp_path):
    doc, _ = _probe(EMULATOR, cache=str(tmp_path))
    assert doc["blocked"] is True  # the blocker works: the package is not importable
    assert doc["attempts"] == [] and doc["ortx"] is False
    assert doc["regions"] == 2 and doc["native"] is True  # regions ran in the plugin
    assert doc["close"] is True
    assert doc["before"] == [] and doc["after_run"] == []
    assert doc["providers"] == ["XDNAExecutionProvider", "CPUExecutionProvider"]


def test_npu_route_on_the_fake_xrt_backend_needs_no_onnxruntime_extensions(
        fake_npu: FakeNpu, tmp_path) -> None:
    """The fake_npu fixture's environment: the plugin's NPU backend built against the
    FAKE XRT library, FAKE xclbins."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    doc, _ = _probe(NPU, env=env, cache=str(tmp_path / "cache"))
    assert doc == {"blocked": True, "attempts": [], "device": "npu", "native": True,
                   "ortx": False}


def test_cli_transcribe_needs_no_onnxruntime_extensions():
    clip = str(list_samples()[0].audio)
    doc, stdout = _probe(CLI, argv=["transcribe", "--device", "cpu", clip])
    assert doc == {"blocked": True, "attempts": [], "rc": 0, "ortx": False}
    assert "Dashwood" in stdout  # the transcription really ran
