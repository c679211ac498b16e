"""Runs fuzz workers in subprocesses: timeouts, a memory cap, classified outcomes.

Why subprocesses: the code under test calls C and C++ (libsndfile, protobuf,
ONNX Runtime, the emulator), where bad input can kill the process with a
signal; in-process a crash would take pytest down and a hang would stall CI.
Each worker prints one JSON object per line on stdout; the last line of a
worker that finished normally is {"done": true}. The outcome of a run is:

    "ok"       exit code 0, the done line, every result line parsed
    "crash"    killed by a signal (negative return code), or no done line
    "hang"     still running at the timeout (killed)
    "exit"     non-zero exit code without a signal
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent.parent
MEMORY_CAP = 6 << 30     # bytes of address space per worker: a runaway allocation fails
                         # with MemoryError / bad_alloc instead of summoning the OOM killer


@dataclass
class RunResult:
    args: list[str]
    outcome: str                       # "ok" | "crash" | "hang" | "exit"
    returncode: int | None
    records: list[dict[str, Any]] = field(default_factory=list)
    stderr_tail: str = ""
    seconds: float = 0.0

    def describe(self) -> str:
        return (f"{self.outcome} (rc={self.returncode}) for {' '.join(self.args[-2:])}\n"
                f"stderr: {self.stderr_tail}")


def _limit_memory() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_worker(module: str, args: Sequence[str], timeout: float,
               cwd: str | os.PathLike[str] | None = None,
               env: dict[str, str] | None = None) -> RunResult:
    """`python -m fuzz.<module> args...` with the tests dir on sys.path."""
    import time

    cmd = [sys.executable, "-m", f"fuzz.{module}", *map(str, args)]
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS_DIR), *filter(None, [full_env.get("PYTHONPATH")])])
    full_env.setdefault("OMP_NUM_THREADS", "1")
    # the cost model's CPU side pinned to the documented constants, as conftest.py
    # pins it in process: a worker's placement must not depend on how fast (or how
    # busy) the machine was when its host benchmark ran
    from xdna_ep.cost import CpuCostModel

    full_env.setdefault("XDNA_EP_CPU_FIGURES", f"dispatch={CpuCostModel().node_dispatch_s!r}")
    full_env["PYTHONFAULTHANDLER"] = "1"   # a crash prints the Python stack to stderr
    if env:
        full_env.update(env)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=cwd, env=full_env, preexec_fn=_limit_memory,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        return RunResult(cmd, "hang", None, _parse(out), _tail(err),
                         time.perf_counter() - t0)
    records = _parse(out)
    done = bool(records) and records[-1].get("done") is True
    rc = proc.returncode
    if rc < 0 or (rc == 0 and not done):
        outcome = "crash"
    elif rc != 0:
        outcome = "exit"
    else:
        outcome = "ok"
    return RunResult(cmd, outcome, rc, [r for r in records if "done" not in r], _tail(err),
                     time.perf_counter() - t0)


def run_many(jobs: Sequence[tuple[str, Sequence[str]]], timeout: float, parallel: int = 2,
             cwd: str | os.PathLike[str] | None = None) -> list[RunResult]:
    """run_worker over `jobs` (module, args), `parallel` at a time, in order."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(run_worker, m, a, timeout, cwd) for m, a in jobs]
        return [f.result() for f in futures]


def _parse(out: bytes) -> list[dict[str, Any]]:
    records = []
    for line in out.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def _tail(err: bytes, n: int = 1500) -> str:
    text = err.decode("utf-8", "replace")
    return text[-n:]


def emit(record: dict[str, Any]) -> None:
    """Worker side: one result line, flushed (so a later crash keeps it)."""
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()
