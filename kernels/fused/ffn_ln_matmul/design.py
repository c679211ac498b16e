"""Fused design "ffn_ln_matmul": one encoder layer's MLP block and the next
layer's layernorm -> projection, in one launch.

    y = x + fc2(gelu(fc1(layernorm_a(x))))      (ffn_block)
    z = matmul(layernorm_b(y), W3)              (ln_matmul: the next q/k/v)

Stages: layernorm -> matmul -> gelu -> matmul -> add -> layernorm -> matmul.
It is the ffn_block design with its ln_matmul tail switched on (phase 3 of
kernels/fused/ffn_block/design.py): the tail runs on the LN and fc1 cores,
whose code already holds the layernorm and matmul stage functions, so the
core object is ffn_block's. y is both an output (the next attention block's
residual) and the tail's input, read back from OUT inside the launch.

Runtime sequence: IN = x fp32 [Mp, C]; OUT = y fp32 [Mp, C], h int8 [Mp, F]
(scratch), z [Mp, Np] (int8 or fp32); WEIGHTS = the five ffn_block stages'
constants then layernorm_b (gamma, beta, scalars) and W3 (int8 [C, Np] +
epilogue words), 64-byte aligned; PARAMS. build_dynamic: the dynamic form
(ffn_block's build_dynamic with the tail).

    python design.py [--rows 1500] [--channels 384] [--ffn 1536] [--n 1152]
                     [--out int8|float32] [--dynamic]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

_FFN = Path(__file__).resolve().parent.parent / "ffn_block" / "design.py"


def _ffn_block():
    spec = importlib.util.spec_from_file_location("ffn_block_design", _FFN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(rows: int, channels: int, ffn: int, n: int, out: str = "int8"):
    return _ffn_block().build(rows, channels, ffn, tail_n=n, tail_out=out,
                              obj="ffn_ln_matmul_aie.o")


def build_dynamic(rows: int, channels: int, ffn: int, n: int):
    """The dynamic form (manifest "dynamic_stages": ffn_block's dynamic form, then
    layernorm -> Q -> matmul, float32 out): ffn_block's build_dynamic with its tail
    (phases 6-8 there, ln_matmul's dynamic pattern on the pass and fc1 cores; the
    tail's scale is the a reducer's second round, SCALES[2]). 15 cores."""
    return _ffn_block().build_dynamic(rows, channels, ffn, tail_n=n, obj="ffn_ln_matmul_aie.o")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("ffn_ln_matmul", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--ffn", type=int, default=1536)
    p.add_argument("--n", type=int, default=1152)
    p.add_argument("--out", choices=["int8", "float32"], default="int8")
    p.add_argument("--dynamic", action="store_true",
                   help="the dynamic form (scales and the gelu table reduced on the array; "
                        "float32 out)")
    a = p.parse_args()
    print(build_dynamic(a.rows, a.channels, a.ffn, a.n) if a.dynamic
          else build(a.rows, a.channels, a.ffn, a.n, a.out))


if __name__ == "__main__":
    main()
