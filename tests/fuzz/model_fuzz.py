"""The model fuzz campaign: base models x mutations -> subprocess runs -> verdicts.

Bases: Whisper-like synthetic graphs from tests/synthetic/graphs.py (an
encoder layer at tiny.en width, big enough that its region is placed on the
NPU, and a decoder-with-past layer, which the cost model keeps on the CPU), and
the real Whisper encoder/decoder exports once xdna_ep.models.ensure_onnx_model()
exists.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from .model_mutators import CONTROL, Mutation, catalogue, write_case
from .runner import RunResult, run_worker

ELEM_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64",
               onnx.TensorProto.INT32: "int32", onnx.TensorProto.FLOAT16: "float16",
               onnx.TensorProto.BOOL: "bool"}


@dataclass
class Base:
    name: str
    model: onnx.ModelProto
    inputs: dict[str, tuple[list[int], str]]   # real shapes to feed (symbolic dims bound)
    # worst relative L2 error (vs plain ORT) the UNMUTATED model's int8 regions may
    # show: set from the control run; mutants may not be worse than 1.5x it
    tolerance: float = 0.1
    # "both": partition() then the session; "session": the session only (it runs the
    # same partition on the same loaded model) - for the 200 MB decoder, whose every
    # extra load costs seconds per case
    mode: str = "both"


def inputs_of(model: onnx.ModelProto, dims: dict[str, int] | None = None
              ) -> dict[str, tuple[list[int], str]]:
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (dims or {}).get(d.dim_param, 1)
                 for d in tt.shape.dim]
        out[vi.name] = (shape, ELEM_DTYPES.get(tt.elem_type, "float32"))
    return out


def synthetic_bases() -> list[Base]:
    from synthetic import graphs as ms

    enc = ms.encoder_layer(d=384, heads=6, ffn=1536, t=100)
    dec = ms.decoder_with_past_layer(d=384, heads=6, ffn=1536)
    return [Base("synthetic_encoder", enc, inputs_of(enc)),
            Base("synthetic_decoder", dec, inputs_of(dec))]


def real_whisper_bases() -> list[Base]:
    """The real tiny.en encoder/decoder (from xdna_ep.models.ensure_onnx_model())."""
    from xdna_ep.models import ensure_onnx_model  # the documented interface

    folder = Path(ensure_onnx_model())
    bases = []
    for fname, dims in (("encoder_model.onnx", {"batch_size": 1}),
                        ("decoder_model.onnx", {"batch_size": 1, "decoder_sequence_length": 4,
                                                "encoder_sequence_length": 1500})):
        m = onnx.load(str(folder / fname))
        bases.append(Base(f"whisper_{fname.split('_')[0]}", m, inputs_of(m, dims),
                          mode="session" if "decoder" in fname else "both"))
    return bases


@dataclass
class Verdict:
    base: str
    mutation: str
    category: str
    outcome: str                      # runner outcome: ok | crash | hang | exit
    partition: str = ""               # ok | clear | unclear
    session: str = ""                 # ok | created | clear | unclear
    problems: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def reproducer(self) -> str:
        return f"base={self.base} mutation={self.mutation}"


def judge(res: RunResult, mutation: Mutation, case_dir: Path, token: str,
          tolerance: float = 0.1) -> Verdict:
    rec = res.records[0] if res.records else {}
    v = Verdict(rec.get("base", "?"), mutation.name, mutation.category, res.outcome,
                record=rec)
    if res.outcome != "ok":
        v.problems.append(f"process {res.outcome} (rc={res.returncode}): {res.stderr_tail}")
        return v
    part, sess = rec.get("partition", {}), rec.get("session", {})
    v.partition = ("ok" if part.get("status") == "ok" else part.get("kind", "in session")
                   if part else "in session")
    v.session = sess.get("status") if sess.get("status") in ("ok", "created") else \
        sess.get("kind", "missing")
    for stage, d in (("partition", part), ("session", sess)):
        if d.get("kind") == "unclear":
            v.problems.append(f"{stage}: unclear {d.get('type')}: {d.get('message')} "
                              f"at {d.get('where')}")
    if sess.get("mismatch"):
        v.problems.append(f"session: wrong outputs vs onnxruntime CPU: {sess['mismatch']}")
    if sess.get("rel_err", 0.0) > tolerance:
        v.problems.append(f"session: outputs off by relative L2 {sess['rel_err']:.3f} vs "
                          f"onnxruntime CPU (the unmutated model: within {tolerance:.3f})")
    if mutation.control and (sess.get("status") != "ok"
                             or rec.get("reference", {}).get("status") != "ok"):
        v.problems.append(f"control case did not run: session={sess} "
                          f"reference={rec.get('reference')}")
    for key in ("audit_hits", "canary_read", "leaks"):
        if rec.get(key):
            v.problems.append(f"{key}: {rec[key]}")
    cache = case_dir / "cache"
    for root, _dirs, files in os.walk(cache):
        for f in files:
            if token.encode() in Path(root, f).read_bytes():
                v.problems.append(f"canary content copied into the cache: {Path(root, f)}")
    return v


def run_case(base: Base, raw: bytes, mutation: Mutation, root: Path, timeout: float,
             keep_failures: bool = True) -> Verdict:
    """Writes one case, runs it in a worker (cwd = the case's cwd/), judges it, and
    removes the case folder unless it failed (then it is the reproducer)."""
    case_dir = root / base.name / mutation.name.replace("/", "__")
    spec_path = write_case(base.name, base.model, raw, mutation, case_dir, base.inputs)
    token = json.loads(spec_path.read_text())["token"]
    res = run_worker("model_worker", [spec_path, base.mode], timeout, cwd=case_dir / "cwd")
    # the control sets the tolerance from its own error, so it is not judged by it
    tol = float("inf") if mutation is CONTROL else base.tolerance
    v = judge(res, mutation, case_dir, token, tol)
    v.record["seconds"] = round(res.seconds, 2)
    if not v.problems or not keep_failures:
        shutil.rmtree(case_dir, ignore_errors=True)
    else:  # the folder is the reproducer: keep what went wrong beside it
        (case_dir / "verdict.json").write_text(json.dumps(
            {"problems": v.problems, "record": v.record,
             "stderr": res.stderr_tail}, indent=1, default=str))
    return v


def interleave(bases: list[Base], mutations: list[Mutation]) -> list[tuple[Base, Mutation]]:
    """Each mutation once, on the bases in turn, counted per category so that every
    category reaches every base: the CI-sized campaign (half the cases of the full
    cross product, every mutation still run)."""
    seen: dict[str, int] = {}
    pairs = []
    for m in mutations:
        k = seen.get(m.category, 0)
        seen[m.category] = k + 1
        pairs.append((bases[k % len(bases)], m))
    return pairs


def run_campaign(root: Path, bases: list[Base], mutations: list[Mutation] | None = None,
                 timeout: float = 120.0, parallel: int = 2,
                 full: bool = True) -> list[Verdict]:
    """The unchanged control of each base first (it must run, and its int8 error
    sets the base's tolerance), then the mutations, `parallel` at a time: every
    mutation on every base (`full`), or each mutation on one base in turn
    (`interleave`)."""
    mutations = mutations if mutations is not None else catalogue()
    raws = {b.name: b.model.SerializeToString() for b in bases}
    verdicts = []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        controls = [pool.submit(run_case, b, raws[b.name], CONTROL, root, timeout)
                    for b in bases]
        for base, fut in zip(bases, controls, strict=True):
            v = fut.result()
            verdicts.append(v)
            err = v.record.get("session", {}).get("rel_err")
            if err is not None:
                base.tolerance = max(0.1, 1.5 * err)
        pairs = ([(b, m) for b in bases for m in mutations] if full
                 else interleave(bases, mutations))
        futures = [pool.submit(run_case, b, raws[b.name], m, root, timeout) for b, m in pairs]
        verdicts += [f.result() for f in futures]
    return verdicts


def summary(verdicts: list[Verdict]) -> dict[str, Counter]:
    by_cat: dict[str, Counter] = {}
    for v in verdicts:
        c = by_cat.setdefault(v.category, Counter())
        c["cases"] += 1
        c[f"session_{v.session}"] += 1
        c[f"partition_{v.partition}"] += 1
        c[f"process_{v.outcome}"] += 1
        c["problems"] += bool(v.problems)
    return by_cat
