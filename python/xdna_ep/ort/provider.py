"""The XDNA execution provider's core: a model and provider options in, the
rewritten model and its region programs for the plugin library out.

ONNX Runtime's compile-based EPs follow one contract: GetCapability (which
nodes the EP takes, as fused subgraphs), then Compile (one compute function per
fused node). XDNAProvider.prepare() is that contract for XDNA:

    device     provider option `device` (auto | npu | emulator), with its reason
    compiled   a shipped compiled model (EPContext-style), a cache entry, or
               partition (capability -> regions -> cost) + compile (quantize ->
               Programs) + rewrite (one region node per NPU region), then cached
    handed on  the rewritten model and its programs to the caller, which runs every
               region natively in the plugin library (libxdna_ep_provider.so); a
               caller that does not run the device there gets the fallback policy
    policy     never a silent CPU fallback: when XDNA cannot run the model, the
               provider raises XDNAUnavailableError (fallback=error) or returns
               the reason as a notice the runtime must show (fallback=allow)

No onnxruntime Python class is used here: this is what a native plugin EP would
call. session.py adapts it to onnxruntime.InferenceSession (the region nodes,
SessionOptions, ep.context_* config entries, warnings).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .. import EP_NAME
from ..capability.shapes import fold_shape_nodes, symbolic_input_dims
from ..compile.program import Program
from ..plan import PartitionPlan
from ..rewrite.graph import node_program, region_nodes, rewrite_model
from . import cpu_quantize, plan_json, stages
from . import dims as dims_mod
from .compiled_model import (
    EPCONTEXT_FILE,
    CacheCorrupt,
    CacheStale,
    ModelCache,
    entry_id,
    extract_programs,
)
from .compiled_model import model_digest as content_digest
from .errors import XDNAUnavailableError
from .model_header import header_of, read_header
from .options import (
    ProviderOptionError,
    ProviderOptions,
    calibration_digest,
    calibration_files_digest,
    first_calibration_sample,
    read_calibration,
)

log = logging.getLogger("xdna_ep")

# (region id, its program, the outputs of one call): see XDNAProvider(observe=...)
RegionObserver = Callable[[int, Program, Mapping[str, np.ndarray]], None]


@dataclass
class StartInfo:
    """How a session started (the benchmark, whisper and tests read it)."""

    # "compiled" | "cache" | "epcontext" | "cpu-fallback" | "cpu-by-cost" | "deferred"
    # (compiled per input shape at its first run; each run's shape then updates it)
    source: str = ""
    seconds: float = 0.0
    cache_entry: Path | None = None
    regions: int = 0
    device: str = ""
    device_reason: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class PreparedModel:
    """The provider's answer for one model.

    `rewritten` is None when the user's model must run unchanged on the CPU
    provider (`notices` then says why, unless fallback=error raised instead).
    """

    rewritten: onnx.ModelProto | None = None
    programs: dict[str, Program] = field(default_factory=dict)
    plan: PartitionPlan | None = None
    device: Any = None
    notices: list[str] = field(default_factory=list)
    # symbolic input dims without a size: compiled per input shape at the first
    # run (XDNAProvider.prepare_shape); nothing is compiled yet
    deferred: tuple[str, ...] = ()
    # the caller runs the regions natively (the plugin library): `rewritten` and
    # `programs` are set (nothing is loaded in Python)
    native: bool = False
    # the model given is already an EPContext model of ours (xdna-ep compile): the
    # caller hands it to the plugin library as it is
    epcontext: bool = False
    # the compiled model as an EPContext model file (the cache entry's), when one
    # exists: a native caller hands ORT this path (`rewritten` may then be None)
    epcontext_file: Path | None = None


def load_model(src: str | os.PathLike[str] | bytes) -> onnx.ModelProto:
    """The user's model, validated, with every node named (regions cite names)."""
    from ..capability.loader import ensure_node_names, validate_model
    from ..capability.loader import load_model as load_file

    if isinstance(src, bytes):
        try:
            model = onnx.load_model_from_string(src)
        except Exception as exc:  # noqa: BLE001 - protobuf decode errors
            raise ValueError(f"model bytes are not a valid ONNX protobuf ({exc})") from None
        validate_model(model, "model bytes")
        ensure_node_names(model)
        return model
    return load_file(src)


class XDNAProvider:
    """The provider for one session's options.

    compile_overrides: further CompileOptions fields (calibrate_method,
    percentile, split_outliers, ...) that no provider option names; `bench
    accuracy` measures its configurations with them. They enter the cache key.
    observe: called with every region call's outputs (`bench accuracy` reads the
    error of each region inside the session with it).
    """

    def __init__(self, options: ProviderOptions,
                 compile_overrides: Mapping[str, Any] | None = None,
                 observe: RegionObserver | None = None) -> None:
        self.options = options
        self.compile_overrides = dict(compile_overrides or {})
        self.observe = observe
        self.start = StartInfo()
        # the loaded programs by region id, once prepare() loaded them
        self.region_programs: dict[int, Program] = {}
        # region node (EPContext node) name -> region id, for region taps (taps.py)
        self.region_names: dict[str, int] = {}
        self._notices: list[str] = []
        # what prepare() read once, kept for prepare_shape() (first-run compiles)
        self._src: str | os.PathLike[str] | bytes = b""
        # the model's graph inputs (model_header.py); the full model is parsed only
        # for a compile and not kept after it (_take_model)
        self.skeleton: onnx.ModelProto | None = None
        self._proto: onnx.ModelProto | None = None
        self._samples: list[dict[str, Any]] | None = None
        self._device: Any = None
        self.dims_choice: dims_mod.DimsChoice | None = None
        self.shapes_compiled: list[str] = []  # shape keys, in compile order
        # device name -> whether the caller runs that device's regions natively: the
        # plugin library's answer (it carries the emulator; the session adapter, or a
        # subclass of it, may decline a device); a declined device gets the fallback
        # policy, nothing runs in Python
        self.native_devices: Callable[[str], bool] = _plugin_runs
        # why the caller can run no region at all (the session adapter: the plugin
        # library cannot be loaded); None when it can. Set, the model is partitioned
        # (for the plan and report) but never compiled, and runs on the CPU provider
        # announced (fallback=allow) or the session fails (fallback=error)
        self.no_runner: str | None = None
        # whether the caller needs the rewritten model and programs in Python even
        # when it runs natively (e.g. to write an ep.context_enable model)
        self.need_model = True
        # provider option device -> (device, why): the plugin library's selection
        # (ort/plugin_route.py); the session adapter sets the same, or one that says
        # why the library cannot run anything
        self.device_selector: Callable[[str, str], tuple[Any, str]] = _plugin_device
        self._ctx_file: Path | None = None  # the last _compiled()'s EPContext file
        self._ctx_regions = 0
        self._last_compile: tuple[dict[str, int], dict[str, str]] = ({}, {})
        self._skip_cache = False

    # -- fallback policy ---------------------------------------------------------------
    def _cannot_run(self, why: str) -> None:
        """XDNA cannot run the model: an error (fallback=error) or a notice."""
        msg = f"{EP_NAME} cannot run this model: {why}"
        if self.options.fallback == "error":
            raise XDNAUnavailableError(msg + " (provider option fallback=error)")
        self._notices.append(msg + "; the whole model runs on CPUExecutionProvider "
                             "(set fallback=error to make this an error)")

    def _on_cpu(self, prepared: PreparedModel, source: str) -> PreparedModel:
        self.start.source = source
        prepared.rewritten = None
        prepared.notices = list(self._notices)
        return prepared

    # -- the contract --------------------------------------------------------------------
    def prepare(self, src: str | os.PathLike[str] | bytes,
                session_options: Any = None) -> PreparedModel:
        """Device, compiled model and its programs for `src` (a path or bytes).

        session_options: the user's onnxruntime.SessionOptions, whose
        free-dimension overrides size the symbolic input dims (ort/dims.py).
        When some symbolic dim has no size from any source, nothing is compiled
        here: `PreparedModel.deferred` names those dims and prepare_shape()
        compiles at the first run of each input shape."""
        opts, info = self.options, self.start
        prepared = PreparedModel()
        if not isinstance(src, bytes) and not Path(src).is_file():
            raise FileNotFoundError(f"model file not found: {src}")
        try:
            device, reason = self.device_selector(opts.device, opts.fallback)
        except Exception as exc:  # noqa: BLE001 - any device failure is reported
            if opts.device == "npu":  # asked for the hardware by name: never substitute
                raise XDNAUnavailableError(f"{EP_NAME}: device=npu is not available: "
                                           f"{exc}") from exc
            self._cannot_run(f"device {opts.device!r} is not available ({exc})")
            return self._on_cpu(prepared, "cpu-fallback")
        info.device, info.device_reason = getattr(device, "name", opts.device), reason
        if self.no_runner is not None and opts.fallback == "error":
            self._cannot_run(self.no_runner)  # raises: nothing is parsed or compiled
        prepared.device = device
        self._device = device
        if info.device == "emulator":
            self._emulator_threads(reason)
        self._src = src
        if isinstance(src, bytes):
            self._proto = load_model(src)
            header = header_of(self._proto)
        else:  # an unchanged file's header comes from the digest index, unparsed
            header, self._proto = read_header(src, ModelCache(opts.cache_dir).index)
        self.skeleton = header.skeleton
        if header.region_nodes:  # a shipped compiled model (EPContext-style)
            info.source = "epcontext"
            proto = self._take_model()
            return self._finish(prepared, proto, extract_programs(proto), None)
        if header.epcontext_nodes:  # written by `xdna-ep compile`
            return self._epcontext(prepared, header.epcontext_nodes)
        # a path calibration is read only on a cache miss; its first sample gives shapes
        self._samples = (None if isinstance(opts.calibration, Path)
                         else read_calibration(opts))
        shape_samples = (first_calibration_sample(opts) if self._samples is None
                         else self._samples)
        choice = dims_mod.resolve(self.skeleton, dict(opts.dims), session_options, shape_samples)
        self.dims_choice = choice
        info.notes.extend(choice.notes)
        for note in choice.notes:
            log.warning("%s: %s", EP_NAME, note)
        if choice.unknown:
            info.source = "deferred"
            prepared.deferred = choice.unknown
            known = f" (known: {choice.describe()})" if choice.dims else ""
            msg = (f"{EP_NAME}: symbolic input dims {', '.join(choice.unknown)} have no size "
                   f"(provider option dims, SessionOptions free-dimension overrides or "
                   f"calibration arrays give one){known}: the model is placed and compiled for "
                   "each input shape at the first run with that shape (cached per shape); "
                   "that run waits for the compile")
            log.info("%s", msg)
            info.notes.append(msg)
            prepared.notices = list(self._notices)
            return prepared
        model, programs, plan = self._compiled(src, choice.dims, choice.source)
        return self._finish(prepared, model, programs, plan)

    def _epcontext(self, prepared: PreparedModel, count: int) -> PreparedModel:
        """An EPContext model of ours: its payloads run only in the plugin library."""
        info = self.start
        info.source = "epcontext"
        self._proto = None  # ORT reads the model itself
        why = (self.no_runner if self.no_runner is not None
               else None if self.runs_natively(info.device)
               else f"the plugin library has no {info.device} backend (it runs the host "
                    "emulator: provider option device=emulator)")
        if why is not None:
            # no CPU fallback exists: the CPU provider cannot run EPContext nodes
            raise XDNAUnavailableError(
                f"{EP_NAME} cannot run this model: its regions are EPContext payloads, which "
                f"only the plugin library runs, and {why}; ONNX Runtime's CPU provider "
                "cannot run EPContext nodes either (run the original model to do without "
                "XDNA)")
        prepared.epcontext = True
        prepared.native = True
        info.regions = count
        prepared.notices = list(self._notices)
        return prepared

    def compile_model(self, src: str | os.PathLike[str]
                      ) -> tuple[onnx.ModelProto, dict[str, Program], PartitionPlan | None]:
        """(rewritten model, programs, plan) for `xdna-ep compile`: sizes from the
        dims option and the calibration arrays (there are no SessionOptions); dims
        still unsized are compiled as the partitioner sees them (symbolic, the
        regions' inputs rank-checked at every run), and named in the plan."""
        self._src = src
        self._proto = load_model(src)
        self.skeleton = header_of(self._proto).skeleton
        if region_nodes(self._proto):  # a shipped compiled model: its programs as they are
            self.start.source = "epcontext"
            return self._proto, extract_programs(self._proto), None
        self._samples = read_calibration(self.options)
        choice = dims_mod.resolve(self.skeleton, dict(self.options.dims), None, self._samples)
        self.dims_choice = choice
        for note in choice.notes:
            log.warning("%s: %s", EP_NAME, note)
        return self._compiled(src, choice.dims, choice.source)

    def prepare_shape(self, run_dims: Mapping[str, int]) -> PreparedModel:
        """The compiled model for one concrete input shape (the first run with that
        shape): `run_dims` binds the dims prepare() left unknown; the sizes known
        at start keep their source. Same policy as prepare() (notices, report)."""
        if self.skeleton is None or self.dims_choice is None:
            raise RuntimeError("prepare_shape() before prepare()")
        self._notices = []
        choice = self.dims_choice
        dims = {**choice.dims, **{k: int(v) for k, v in run_dims.items()}}
        source = {k: (choice.source[k] if choice.dims.get(k) == v else
                      dims_mod.SOURCE_FIRST_RUN) for k, v in dims.items()}
        prepared = PreparedModel(device=self._device)
        log.info("%s: compiling for input shape %s (first run with this shape)", EP_NAME,
                 dims_mod.shape_key(dims))
        model, programs, plan = self._compiled(self._src, dims, source)
        return self._finish(prepared, model, programs, plan)

    def pinned(self, dims: Mapping[str, int], sources: Mapping[str, str]) -> bool:
        """True when `dims` binds every symbolic input dim of the model, none by a
        default and none by the calibration arrays: the compiled model then holds
        for that one input shape only. Calibration arrays size placement and cost
        but promise nothing about run shapes (a Whisper decoder's past length grows
        every token): pinning to them would compile once per token."""
        if self.skeleton is None:
            return False
        if any(s == dims_mod.SOURCE_CALIBRATION for s in sources.values()):
            return False
        names = {d.name for d in symbolic_input_dims(self.skeleton)}
        return bool(names) and names <= set(dims)

    def _finish(self, prepared: PreparedModel, model: onnx.ModelProto | None,
                programs: dict[str, Program], plan: PartitionPlan | None) -> PreparedModel:
        """Report and fallback policy, once a model is compiled (or not): the caller
        runs the compiled regions natively, or XDNA cannot run the model."""
        opts, info = self.options, self.start
        prepared.plan = plan
        ctx_file, self._ctx_file = self._ctx_file, None
        if plan is not None:
            key = dims_mod.shape_key(plan.dims) if plan.dims else ""
            if key and key not in self.shapes_compiled:
                self.shapes_compiled.append(key)
            if len(self.shapes_compiled) > 1:
                plan.notes.append("input shapes compiled by this session so far: "
                                  + "; ".join(self.shapes_compiled)
                                  + " (this report describes the latest)")
        if self.no_runner is not None and (programs or plan is not None and any(
                r.placement == "npu" for r in plan.regions)):
            return self._no_runner(prepared, plan)
        if plan is not None and opts.report is not None:  # also when nothing runs: it says why
            stages.write_report(plan, opts.report)
        if model is None and ctx_file is not None:
            # a warm start on the plugin library: the cache entry's EPContext model
            # goes to ORT as a file, nothing of it is parsed here
            prepared.native, prepared.epcontext_file = True, ctx_file
            self.region_programs = {}
            info.regions = self._ctx_regions
            prepared.notices = list(self._notices)
            return prepared
        if not programs and info.source == "cpu-fallback":
            return self._on_cpu(prepared, "cpu-fallback")  # _compiled already said why
        if not programs and plan is not None and _cost_kept_everything_on_cpu(plan):
            # a placement decision, not a failure: announced, but fallback=error is
            # about what cannot run (model or device), so it does not raise here
            reasons = sorted({r.cost_reason for r in plan.regions})[:2]
            self._notices.append(f"{EP_NAME} places no node on the NPU: the cost model keeps "
                                 f"every region on CPUExecutionProvider ({'; '.join(reasons)})")
            return self._on_cpu(prepared, "cpu-by-cost")
        if not programs:
            why = "no node of the model can run on the NPU"
            if plan is not None:
                reasons = sorted({n.reason for n in plan.nodes if n.placement == "cpu"})[:3]
                why += f" (e.g. {'; '.join(reasons)})" if reasons else ""
            self._cannot_run(why)
            return self._on_cpu(prepared, "cpu-fallback")
        assert model is not None  # programs come with their rewritten model
        if not self.runs_natively(info.device):
            self._cannot_run(f"the compiled regions for device {info.device!r} run only in "
                             "the plugin library, and the caller does not run that device "
                             "there")
            return self._on_cpu(prepared, "cpu-fallback")
        prepared.native, prepared.epcontext_file = True, ctx_file
        nodes = region_nodes(model)
        self.region_programs = {int(_region_id(n)): programs[node_program(n)[0]]
                                for n in nodes}
        self.region_names = {n.name: int(_region_id(n)) for n in nodes}
        prepared.rewritten, prepared.programs = model, programs
        prepared.notices = list(self._notices)
        info.regions = len(self.region_programs)
        return prepared

    def _no_runner(self, prepared: PreparedModel, plan: PartitionPlan | None) -> PreparedModel:
        """Regions placed on the NPU that nothing can run (no_runner): every one goes
        back to the CPU with the reason in the plan (fallbacks, notes, the report),
        and the whole model, its original FP32 nodes, runs on the CPU provider
        (fallback=allow; fallback=error raised in prepare())."""
        why = f"regions placed on the NPU run on CPUExecutionProvider instead: {self.no_runner}"
        if plan is not None:
            for region in plan.regions:
                if region.placement == "npu":
                    _keep_on_cpu(plan, region, f"no runner: {self.no_runner}")
            plan.fallbacks.append(why)
            plan.notes.append(why)
            if self.options.report is not None:
                stages.write_report(plan, self.options.report)
        self._cannot_run(str(self.no_runner))
        self.region_programs, self.region_names = {}, {}
        return self._on_cpu(prepared, "cpu-fallback")

    def cpu_model(self) -> str | os.PathLike[str] | bytes:
        """The model ONNX Runtime runs when XDNA runs none of it (nothing placed, a
        fallback, the base session of a model compiled per shape): the user's
        model, or with cpu_quantization=dynamic_int8 its dynamic-INT8 twin from
        the cache (quantized once per model content)."""
        if self.options.cpu_quantization == "none":
            return self._src
        cache = ModelCache(self.options.cache_dir)
        digest = content_digest(self._src, cache.index)
        try:
            return cpu_quantize.cached_quantized_file(self._src, digest, self.options.cache_dir)
        except OSError as exc:  # read-only or full cache_dir: quantized in memory, said
            log.warning("%s: cannot write the INT8 CPU model into %s (%s); quantized "
                        "in memory for this session", EP_NAME, self.options.cache_dir, exc)
            src = self._src if isinstance(self._src, bytes) else Path(self._src).read_bytes()
            proto = cpu_quantize.quantize_model(onnx.load_model_from_string(src))
            return proto.SerializeToString()

    def runs_natively(self, device: str) -> bool:
        """Whether the caller runs this device's regions natively (native_devices;
        an observer then sees them through a region tap, taps.py)."""
        return self.native_devices(device)

    def region_of(self, name: str) -> tuple[int, Program]:
        """(region id, program) of the region node `name` (a region tap's call)."""
        rid = self.region_names.get(name)
        if rid is None or rid not in self.region_programs:
            raise KeyError(f"{EP_NAME}: region node {name!r} has no program in Python (an "
                           "EPContext model or a warm cache start without the parsed model)")
        return rid, self.region_programs[rid]

    def recompile(self, why: str) -> PreparedModel:
        """The last compiled shape again, ignoring the cache entry (whose stored
        form ONNX Runtime or the plugin library refused: `why`); the new compile
        replaces the entry."""
        log.warning("%s: cache entry %s was refused when loaded (%s); rebuilding it",
                    EP_NAME, self.start.cache_entry, why)
        self.start.notes.append(f"cache entry rebuilt: {why}")
        dims, source = self._last_compile
        self._notices, self._skip_cache = [], True
        try:
            model, programs, plan = self._compiled(self._src, dims, source)
        finally:
            self._skip_cache = False
        return self._finish(PreparedModel(device=self._device), model, programs, plan)

    def _take_model(self) -> onnx.ModelProto:
        """The user's model for one compile: the parse prepare() already made, or a
        fresh one; the provider keeps no reference to it afterwards."""
        proto, self._proto = self._proto, None
        return proto if proto is not None else load_model(self._src)

    def _emulator_threads(self, reason: str) -> None:
        log.info("%s: regions run on the host emulator (%s)", EP_NAME, reason)
        if self.options.num_threads is not None:
            from .._native import emulator

            # the emulator's thread pool is per process: the last session's
            # setting wins (said in the log and in docs/PROVIDER_OPTIONS.md)
            emulator.set_num_threads(self.options.num_threads)
            log.info("%s: emulator threads set to %d (process-wide)", EP_NAME,
                     self.options.num_threads)

    def _options_key(self) -> str:
        """The options part of the cache key (compile overrides only when given, so
        the keys of ordinary sessions stay what they always were)."""
        if not self.compile_overrides:
            return self.options.to_json()
        return json.dumps({**self.options.compile_key(),
                           "compile_overrides": self.compile_overrides}, sort_keys=True)

    def _store(self, cache: ModelCache, eid: str, key: dict[str, Any],
               model: onnx.ModelProto | None, programs: dict[str, Program],
               plan: PartitionPlan) -> Path | None:
        """Write the cache entry (model None: a nothing-placed decision); its
        directory, or None when it could not be written."""
        opts, info = self.options, self.start
        try:
            info.cache_entry = cache.store(eid, key, model, programs,
                                           {"plan": plan_json.plan_to_dict(plan)},
                                           dims=plan.dims)
        except OSError as exc:  # read-only or full cache_dir: run uncached, say so
            log.warning("%s: cannot write the compiled-model cache in %s (%s); this "
                        "session runs without caching", EP_NAME, opts.cache_dir, exc)
            info.notes.append(f"cache not written: {exc}")
            return None
        return info.cache_entry

    def _compiled(self, src: str | os.PathLike[str] | bytes, dims: Mapping[str, int],
                  dims_source: Mapping[str, str]
                  ) -> tuple[onnx.ModelProto | None, dict[str, Program],
                             PartitionPlan | None]:
        """(rewritten model, programs by reference, plan) for the symbolic input
        dims bound to `dims`, from the cache or a fresh partition + compile. The
        model is None when the cache holds a nothing-placed decision."""
        opts, info = self.options, self.start
        cache = ModelCache(opts.cache_dir)
        self._ctx_file = None
        self._last_compile = (dict(dims), dict(dims_source))
        # a native caller that needs no Python model reads only the EPContext file
        parse = self.need_model or not self.runs_natively(info.device)
        samples = self._samples
        options_key = self._options_key()
        if dims:  # the shape compiled enters the key (keys without dims are unchanged)
            options_key += "|dims:" + dims_mod.shape_key(dims)
        # a path calibration is keyed by its files' bytes: a warm start reads no
        # sample (the Whisper decoder's set is ~425 MB); a miss reads them below
        cal_digest = (calibration_files_digest(opts.calibration, cache.index)
                      if isinstance(opts.calibration, Path)
                      else calibration_digest(opts, samples))
        key = {"model": content_digest(src, cache.index), "options": options_key,
               "calibration": cal_digest}
        eid = entry_id(key["model"], key["options"], key["calibration"])
        try:
            entry = None if self._skip_cache else cache.load(eid, key, parse=parse)
        except CacheStale as exc:
            log.warning("%s: %s; rebuilding", EP_NAME, exc)
            entry = None
        except CacheCorrupt as exc:
            log.warning("%s: %s; rebuilding it", EP_NAME, exc)
            info.notes.append(f"corrupt cache entry rebuilt: {exc}")
            entry = None
        if entry is not None:
            info.source, info.cache_entry = "cache", entry.path
            plan_doc = entry.manifest.get("info", {}).get("plan")
            plan = plan_json.plan_from_dict(plan_doc) if plan_doc else None
            if plan is not None:  # this start's device and dims sources, not the compile's
                plan.device, plan.device_reason = info.device, info.device_reason
                plan.dims_source.update({k: v for k, v in dims_source.items()
                                         if k in plan.dims_source})
            self._ctx_file, self._ctx_regions = entry.epcontext, entry.region_count
            if entry.model is None:  # nothing placed (prepare() says why), or not parsed
                return None, {}, plan
            return entry.model, entry.programs, plan
        info.source = "compiled"
        name = "model bytes" if isinstance(src, bytes) else Path(src).name
        # partition renames nodes and rewrite reads the model: each compile works
        # on its own parse, dropped afterwards
        proto = self._take_model()
        if self.pinned(dims, dims_source):
            # compiled for exactly this input shape (runs of another shape get their
            # own compile): run-time shape computations become constants
            proto, folded = fold_shape_nodes(proto, dict(dims))
            if folded:
                log.info("%s: %d Shape node(s) folded to constants for input shape %s",
                         EP_NAME, folded, dims_mod.shape_key(dims))
        try:
            plan = stages.partition(proto, opts, info.device, info.device_reason, name,
                                    dict(dims), dict(dims_source), self.compile_overrides)
            if opts.cpu_quantization != "none":  # in the report and the cached plan
                plan.notes.append(cpu_quantize.DESCRIPTION)
            if not any(r.placement == "npu" for r in plan.regions):
                self._store(cache, eid, key, None, {}, plan)  # a warm start skips partition
                return proto, {}, plan
            if self.no_runner is not None:  # nothing could run the programs: not compiled
                return proto, {}, plan
            if samples is None:
                samples = read_calibration(opts)
            compiled = stages.compile_regions(proto, plan, opts, samples,
                                              self.compile_overrides)
            _drop_unrunnable(plan, compiled)
            if not compiled:  # every NPU region went back to the CPU: also a decision
                self._store(cache, eid, key, None, {}, plan)
                return proto, {}, plan
            rewritten, nodes = rewrite_model(proto, plan, compiled)
            if opts.cpu_quantization == "dynamic_int8":
                rewritten = cpu_quantize.quantize_model(rewritten)
        except Exception as exc:  # noqa: BLE001 - reported by _cannot_run (notice or error)
            from ..quantize.calibration import CalibrationError

            if isinstance(exc, (CalibrationError, ProviderOptionError)):
                raise  # unusable calibration data is the caller's error, as before
            log.debug("partition/compile failure", exc_info=True)
            self._cannot_run(f"partitioning or compiling failed ({type(exc).__name__}: {exc})")
            info.source = "cpu-fallback"
            return proto, {}, None
        programs = {n.program: compiled[n.region] for n in nodes}
        stored = self._store(cache, eid, key, rewritten, programs, plan)
        if stored is not None and (stored / EPCONTEXT_FILE).is_file():
            self._ctx_file, self._ctx_regions = stored / EPCONTEXT_FILE, len(programs)
        log.info("%s: compiled %d region(s) (%.1f%% of the MACs); cache entry %s", EP_NAME,
                 len(nodes), 100.0 * plan.npu_mac_share, info.cache_entry)
        for why in plan.fallbacks:
            log.info("%s: kept on CPU: %s", EP_NAME, why)
        return rewritten, programs, plan


def _plugin_device(name: str, fallback: str) -> tuple[Any, str]:
    """(device, why) as the plugin library chooses it (imported at call time: the
    route imports onnxruntime, which this module does not)."""
    from .plugin_route import select_device

    return select_device(name, fallback)


def _plugin_runs(device: str) -> bool:
    """Whether the plugin library runs this device's regions (plugin_route.runs)."""
    from .plugin_route import runs

    return runs(device)


def _cost_kept_everything_on_cpu(plan: PartitionPlan) -> bool:
    """True when NPU-capable regions exist and the cost model (not a failure) put
    every one of them on the CPU."""
    return bool(plan.regions) and all(
        r.placement == "cpu" and r.cost_reason.startswith("cost:") for r in plan.regions)


def _drop_unrunnable(plan: PartitionPlan, compiled: dict[int, Program]) -> None:
    """Regions the region node scheme cannot express (too many inputs/outputs for
    its arity table, non-float32 outputs: rewrite/graph.py) go back to the CPU
    with the reason in the plan (and the report)."""
    from ..rewrite.graph import OUTPUT_DTYPES, op_type_for

    for region in plan.regions:
        prog = compiled.get(region.id)
        if region.placement != "npu" or prog is None:
            continue
        try:
            op_type_for(len(prog.inputs), len(prog.outputs))
            bad = [t.name for t in prog.outputs if t.dtype not in OUTPUT_DTYPES]
            if bad:
                raise NotImplementedError(f"outputs {bad} are not float32")
        except NotImplementedError as exc:
            _keep_on_cpu(plan, region, f"no region node for it: {exc}", str(exc))
            plan.fallbacks.append(f"region {region.id}: {exc}")
            del compiled[region.id]


def _keep_on_cpu(plan: PartitionPlan, region: Any, cost_reason: str,
                 node_reason: str | None = None) -> None:
    """Region `region` of `plan` and its nodes go back to the CPU, the reason
    recorded where the report shows it."""
    region.placement = "cpu"
    region.cost_reason = cost_reason
    for n in plan.nodes:
        if n.region == region.id:
            n.placement = "cpu"
            n.reason = f"region {region.id} kept on CPU: {node_reason or cost_reason}"


def _region_id(node: onnx.NodeProto) -> str:
    for a in node.attribute:
        if a.name == "region":
            return a.s.decode() or "-1"
    return "-1"
