"""Subprocess worker: one XDNA session on a model with a given cache_dir.

    python -m fuzz.session_worker MODEL CACHE_DIR INPUT.npz OUT.npz START_AT [N_RUNS]

Sleeps until the wall-clock time START_AT (so several workers start their
compile at the same moment), creates xdna_ep.InferenceSession with
providers ["XDNAExecutionProvider", "CPUExecutionProvider"], runs the inputs
N_RUNS times, saves the outputs and prints {"source", "entry", "error"}.
"""

from __future__ import annotations

import sys
import time
import traceback

import numpy as np

from .runner import emit


def main(argv: list[str]) -> int:
    model, cache_dir, inp, out, start_at = argv[:5]
    runs = int(argv[5]) if len(argv) > 5 else 1
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]  # see model_worker
    import xdna_ep

    feeds = dict(np.load(inp))
    delay = float(start_at) - time.time()
    if delay > 0:
        time.sleep(delay)
    rec: dict[str, object] = {}
    try:
        sess = xdna_ep.InferenceSession(
            model, providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
            provider_options=[{"cache_dir": cache_dir, "device": "emulator"}, {}])
        rec.update(source=sess.xdna_start.source, entry=str(sess.xdna_start.cache_entry),
                   notes=sess.xdna_start.notes)
        outs = None
        for _ in range(runs):
            outs = sess.run(None, feeds)
        np.savez(out, *outs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["traceback"] = traceback.format_exc()[-2000:]
    emit(rec)
    emit({"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
