"""Subprocess worker for the soak test: sessions created and dropped, many runs.

    python -m fuzz.soak_worker MODEL CACHE_DIR INPUT.npz SESSIONS RUNS

Measures resident memory (VmRSS) and open file descriptors in a clean process
(pytest's own allocations would blur the figures) and prints them as JSON:
samples taken after each session and every 100 runs, after gc.collect().
"""

from __future__ import annotations

import gc
import os
import sys
import time

import numpy as np

from .runner import emit

EP = "XDNAExecutionProvider"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main(argv: list[str]) -> int:
    model, cache_dir, inp, n_sessions, n_runs = argv[0], argv[1], argv[2], int(argv[3]), \
        int(argv[4])
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]  # see model_worker
    import xdna_ep

    feeds = dict(np.load(inp))

    def make():
        return xdna_ep.InferenceSession(
            model, providers=[EP, "CPUExecutionProvider"],
            provider_options=[{"cache_dir": cache_dir, "device": "emulator"}, {}])

    first = make()
    want = [np.ascontiguousarray(o).tobytes() for o in first.run(None, feeds)]
    source = first.xdna_start.source
    del first
    gc.collect()
    sessions = []
    t0 = time.perf_counter()
    for _ in range(n_sessions):
        s = make()
        got = [np.ascontiguousarray(o).tobytes() for o in s.run(None, feeds)]
        if got != want:
            raise AssertionError("a re-created session gave different outputs")
        del s
        gc.collect()
        sessions.append({"rss_mb": round(rss_mb(), 1), "fds": open_fds()})
    t_sessions = time.perf_counter() - t0
    s = make()
    runs = []
    t0 = time.perf_counter()
    for i in range(1, n_runs + 1):
        got = s.run(None, feeds)
        if i % 100 == 0:
            if [np.ascontiguousarray(o).tobytes() for o in got] != want:
                raise AssertionError(f"run {i} gave different outputs")
            gc.collect()
            runs.append({"run": i, "rss_mb": round(rss_mb(), 1), "fds": open_fds()})
    emit({"first_source": source, "regions": s.xdna_start.regions,
          "sessions": sessions, "runs": runs, "seconds_sessions": round(t_sessions, 1),
          "seconds_runs": round(time.perf_counter() - t0, 1)})
    emit({"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
