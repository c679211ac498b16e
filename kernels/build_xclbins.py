#!/usr/bin/env python3
"""Build the NPU xclbins and instruction streams from the IRON designs.

    python kernels/build_xclbins.py [--out DIR] [--only NAME ...]   # build
    python kernels/build_xclbins.py --check                         # CI check

Build needs the MLIR-AIE toolchain (kernels/toolchain.py: the versions the
designs target): the `aie` Python package (mlir_aie wheel: IRON + aiecc.py +
the aie_api headers), Peano (llvm-aie; set PEANO_INSTALL_DIR or pip-install
llvm-aie) and XRT's xclbinutil. xchesscc is not needed. Without them the
script names exactly which tool is missing or too old and exits with status 2.
Built xclbins and instruction streams are cached by design hash (the target's
sources, build arguments and tool versions; --cache, --no-cache).

For every kernel and fused design in kernels/manifest.json it compiles the
AIE core source (<kernel>/aie/<kernel>_aie.cc, or fused/<d>/<d>_aie.cc) with
Peano, runs the design (`python design.py <build_args>` prints MLIR) and
calls aiecc.py to produce the xclbin and the instruction file named in the
manifest, in --out (default: kernels/xclbin, which the runtime searches).

--check needs no toolchain: it py_compiles every design, verifies that the
manifest and the folders agree, and traces every kernel and design under a
FAKE IRON (kernels/iron_check.py: DMA volumes, access-pattern bounds, core
and memory-tile memory) for the Whisper shapes of every size, tiny to
large-v3 (kernels/whisper_shapes.py). Used by tests and CI.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MANIFEST = ROOT / "manifest.json"
NOT_KERNEL_DIRS = {"common", "fused", "xclbin", "__pycache__"}


@dataclass(frozen=True)
class Target:
    name: str
    folder: Path
    design: Path
    source: Path
    xclbin: str
    instructions: str
    build_args: tuple[str, ...]


def load_manifest(path: Path = MANIFEST) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}") from exc
    try:  # the package's validator, when xdna_ep is importable
        from xdna_ep.kernel_specs.manifest import ManifestError, parse
    except ImportError:
        return doc
    try:
        parse(doc)
    except ManifestError as exc:
        raise SystemExit(str(exc)) from exc
    return doc


def targets(doc: dict) -> list[Target]:
    out = []
    for name, k in doc["kernels"].items():
        folder = ROOT / k["folder"]
        out.append(Target(name, folder, folder / k["design"], folder / k["aie_source"],
                          k["xclbin"], k["instructions"], tuple(k.get("build_args", []))))
    for name, d in doc["designs"].items():
        folder = ROOT / d["folder"]
        out.append(Target(name, folder, folder / d["design"], folder / f"{name}_aie.cc",
                          d["xclbin"], d["instructions"], tuple(d.get("build_args", []))))
        if "dynamic_build_args" in d:   # the dynamic form: its own runtime sequence and files
            out.append(Target(f"{name}.dynamic", folder, folder / d["design"],
                              folder / f"{name}_aie.cc", d["dynamic_xclbin"],
                              d["dynamic_instructions"],
                              tuple(d.get("build_args", [])) + tuple(d["dynamic_build_args"])))
    return out


def unbuilt_dynamic_forms(doc: dict) -> list[str]:
    """Designs whose dynamic form is in the manifest (grouping, host layout, FAKE
    hardware) but has no IRON variant yet: no xclbin is built for it, so on an NPU
    those launches find no xclbin and run on the host emulator, announced."""
    return [n for n, d in doc["designs"].items()
            if d.get("dynamic_stages") and "dynamic_build_args" not in d]


# ------------------------------------------------------------------- --check
def check(doc: dict, sizes: list[str] | None = None, table: list[str] | None = None) -> list[str]:
    """Problems found (empty = the manifest matches the folders, every design compiles
    and traces for every Whisper size in `sizes`, default all); trace lines go to `table`."""
    problems: list[str] = []
    listed_folders = set()
    for name, k in doc["kernels"].items():
        folder = ROOT / k["folder"]
        listed_folders.add(folder.name)
        for key in ("header", "aie_source", "design"):
            if not (folder / k[key]).is_file():
                problems.append(f"kernel {name}: {k['folder']}/{k[key]} ({key}) is missing")
        if not (folder / "README.md").is_file():
            problems.append(f"kernel {name}: {k['folder']}/README.md is missing")
    listed_designs = set()
    for name, d in doc["designs"].items():
        folder = ROOT / d["folder"]
        listed_designs.add(folder.name)
        if folder.name != name:
            problems.append(f"design {name}: folder {d['folder']} should be fused/{name}")
        for rel in (d["design"], f"{name}_aie.cc"):
            if not (folder / rel).is_file():
                problems.append(f"design {name}: {d['folder']}/{rel} is missing")
    for sub in sorted(p for p in ROOT.iterdir() if p.is_dir() and p.name not in NOT_KERNEL_DIRS):
        if (sub / "design.py").is_file() and sub.name not in listed_folders:
            problems.append(f"folder kernels/{sub.name} has a design.py but no manifest entry")
    fused = ROOT / "fused"
    if fused.is_dir():
        for sub in sorted(p for p in fused.iterdir() if p.is_dir() and p.name != "__pycache__"):
            if sub.name not in listed_designs:
                problems.append(f"folder kernels/fused/{sub.name} has no manifest design entry")
    sources = [t.design for t in targets(doc)] + sorted(fused.glob("*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        for i, src in enumerate(dict.fromkeys(sources)):
            if not src.is_file():
                continue  # reported above
            try:
                py_compile.compile(str(src), cfile=os.path.join(tmp, f"{i}.pyc"), doraise=True)
            except py_compile.PyCompileError as exc:
                problems.append(f"{src.relative_to(ROOT)} does not compile: {exc.msg}")
    lines, traced = trace_designs(doc, sizes)
    if table is not None:
        table += lines
    return problems + traced


def load_design(rel: str):
    """A design module by its path under kernels/ (registered in sys.modules so its
    dataclasses resolve; loaded inside iron_check.fake_iron when tracing)."""
    path = ROOT / rel
    name = "xdna_design_" + rel.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def trace_designs(doc: dict, sizes: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(table lines, problems): every kernel and design of the manifest traced under the
    FAKE IRON (kernels/iron_check.py) for each Whisper size of kernels/whisper_shapes.py."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import iron_check
    import whisper_shapes

    names = set(doc["kernels"]) | set(doc["designs"])
    lines, problems, covered = [], [], set()
    for size in whisper_shapes.SIZES:
        if sizes and size.name not in sizes:
            continue
        for case in whisper_shapes.design_cases(size):
            covered.add(case.design)
            where = f"{case.id} @ {size.name} (d={size.d}, {size.heads} heads)"
            try:
                rep = iron_check.trace(lambda c=case: load_design(c.path), case.fn, *case.args)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding to report
                problems.append(f"{where}: {type(exc).__name__}: {exc}")
                continue
            lines.append(f"{size.name:9s} {case.id:26s} {rep.workers:2d} cores, "
                         f"max core {rep.max_core / 1024:5.1f} KiB, "
                         f"max memtile {rep.max_memtile / 1024:6.1f} KiB, "
                         f"fifo ends in/out per core <= {rep.max_streams[0]}/{rep.max_streams[1]}"
                         + (" (over the tile's DMA channels)" if rep.over_dma_channels else ""))
    for missing in sorted(names - covered):
        problems.append(f"{missing}: no Whisper case in kernels/whisper_shapes.py")
    return lines, problems


# -------------------------------------------------------------------- build
@dataclass(frozen=True)
class Toolchain:
    python: str
    aiecc: str
    peano: Path
    aie_include: Path
    versions: str          # toolchain.versions_key: part of every design hash


def _toolchain_module():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import toolchain

    return toolchain


def find_toolchain() -> tuple[Toolchain | None, list[str]]:
    """The toolchain, or the exact list of what is missing or too old
    (kernels/toolchain.py TOOLS: mlir_aie package, aiecc.py, Peano, xclbinutil)."""
    tcm = _toolchain_module()
    found = tcm.probe()
    missing = [f.problem for f in found.values() if f.problem]
    aie_root = None
    if not found["mlir_aie"].problem:
        try:
            from aie.utils.config import root_path  # type: ignore[import-not-found]

            aie_root = Path(root_path())
        except Exception as exc:  # noqa: BLE001 - report any broken install
            missing.append(f"a working `aie` package (aie.utils.config.root_path failed: {exc})")
    include = aie_root / "include" if aie_root else None
    if aie_root is not None and not (include / "aie_api" / "aie.hpp").is_file():
        missing.append(f"aie_api headers ({include}/aie_api/aie.hpp not found)")
    if missing:
        return None, missing
    return Toolchain(sys.executable, found["aiecc"].path, Path(found["peano"].path), include,
                     tcm.versions_key(found)), []


# -------------------------------------------------------------------- cache
def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xdna-ep" / "xclbin-builds"


def design_sources(t: Target, doc: dict) -> list[Path]:
    """Every file a target's build reads: its folder, for a fused design its stage
    kernels' folders and the shared fused modules, and kernels/common."""
    folders = {t.folder, ROOT / "common"}
    entry = doc["designs"].get(t.name)
    if entry is not None:
        for k in list(entry["stages"]) + list(entry.get("glue", [])):
            folders.add(ROOT / doc["kernels"][k]["folder"])
    files = [ROOT / "fused" / "_stages.py", ROOT / "fused" / "scratch.py", MANIFEST]
    for f in sorted(folders):
        files += sorted(p for p in f.rglob("*") if p.is_file() and p.suffix in (".py", ".cc",
                                                                                 ".h", ".hpp"))
    return files


def design_hash(t: Target, doc: dict, versions: str) -> str:
    """sha256 over the target's sources, its build arguments and the tool versions."""
    h = hashlib.sha256()
    for f in design_sources(t, doc):
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(json.dumps([t.name, list(t.build_args), versions]).encode())
    return h.hexdigest()[:24]


def run(cmd: list[str], cwd: Path, stdout=None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=stdout)


def build_one(t: Target, tc: Toolchain, out_dir: Path, work: Path, doc: dict,
              cache: Path | None) -> str:
    """Builds one target into out_dir (or copies it from the cache: same design hash);
    returns "cached" or "built"."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key = design_hash(t, doc, tc.versions)
    hit = cache / f"{t.name}-{key}" if cache else None
    if hit is not None and all((hit / f).is_file() for f in (t.xclbin, t.instructions)):
        for f in (t.xclbin, t.instructions):
            shutil.copy2(hit / f, out_dir / f)
        print(f"cached {t.name} ({key}): {out_dir / t.xclbin}, {out_dir / t.instructions}")
        return "cached"
    wd = work / t.name
    wd.mkdir(parents=True, exist_ok=True)
    obj = wd / (t.source.stem + ".o")
    run([str(tc.peano / "bin" / "clang++"), "-O2", "-std=c++20",
         "--target=aie2-none-unknown-elf", "-DNDEBUG", f"-I{tc.aie_include}", f"-I{ROOT}",
         "-c", str(t.source), "-o", str(obj)], cwd=wd)
    with open(wd / "aie.mlir", "w") as mlir:
        run([tc.python, str(t.design), *t.build_args], cwd=wd, stdout=mlir)
    run([tc.aiecc, "--no-xchesscc", "--no-xbridge", f"--peano={tc.peano}",
         "--aie-generate-xclbin", f"--xclbin-name={t.xclbin}",
         "--aie-generate-npu-insts", f"--npu-insts-name={t.instructions}", "aie.mlir"], cwd=wd)
    for f in (t.xclbin, t.instructions):
        shutil.copy2(wd / f, out_dir / f)
    if hit is not None:
        hit.mkdir(parents=True, exist_ok=True)
        for f in (t.xclbin, t.instructions):
            shutil.copy2(wd / f, hit / f)
    print(f"built {t.name} ({key}): {out_dir / t.xclbin}, {out_dir / t.instructions}")
    return "built"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="py_compile every design and check the manifest against the folders")
    ap.add_argument("--sizes", type=lambda v: v.split(","), default=None,
                    help="--check: Whisper sizes to trace (comma separated; default all: "
                         "tiny,base,small,medium,large-v3)")
    ap.add_argument("--out", type=Path, default=ROOT / "xclbin", help="output directory")
    ap.add_argument("--only", nargs="*", default=None, help="kernel/design names to build")
    ap.add_argument("--work", type=Path, default=None, help="keep intermediates here")
    ap.add_argument("--cache", type=Path, default=default_cache(),
                    help="xclbins + instruction streams by design hash (sources, build "
                         "arguments, tool versions); default %(default)s")
    ap.add_argument("--no-cache", action="store_true", help="always rebuild")
    args = ap.parse_args(argv)

    doc = load_manifest()
    if args.check:
        table: list[str] = []
        problems = check(doc, args.sizes, table)
        print("\n".join(table))
        for p in problems:
            print("ERROR:", p)
        n = len(doc["kernels"]) + len(doc["designs"])
        print(f"checked {n} kernels/designs, {len(table)} traced Whisper cases: "
              + ("OK" if not problems else f"{len(problems)} problem(s)"))
        unbuilt = unbuilt_dynamic_forms(doc)
        if unbuilt:
            print(f"dynamic forms without an IRON variant yet (no xclbin is built; on an NPU "
                  f"their launches run on the host emulator, announced): {', '.join(unbuilt)}")
        return 1 if problems else 0

    tc, missing = find_toolchain()
    if tc is None:
        print("Cannot build xclbins: the MLIR-AIE toolchain is incomplete. Missing or too old:")
        for m in missing:
            print("  -", m)
        return 2
    selected = targets(doc)
    for name in unbuilt_dynamic_forms(doc):
        print(f"note: {name}'s dynamic form has no IRON variant yet: nothing to build for it")
    if args.only:
        unknown = set(args.only) - {t.name for t in selected}
        if unknown:
            print(f"unknown kernel/design names: {sorted(unknown)}")
            return 2
        selected = [t for t in selected if t.name in args.only]
    work_ctx = tempfile.TemporaryDirectory() if args.work is None else None
    work = Path(work_ctx.name) if work_ctx else args.work
    try:
        failed = []
        for t in selected:
            try:
                build_one(t, tc, args.out, work, doc, None if args.no_cache else args.cache)
            except (subprocess.CalledProcessError, OSError) as exc:
                print(f"FAILED {t.name}: {exc}")
                failed.append(t.name)
        if failed:
            print(f"{len(failed)} of {len(selected)} builds failed: {failed}")
            return 1
        return 0
    finally:
        if work_ctx:
            work_ctx.cleanup()


if __name__ == "__main__":
    sys.exit(main())
