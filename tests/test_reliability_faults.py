"""Device faults during long runs (issue 8 item 3; docs/RELIABILITY.md).

Random faults are injected through the FAKE pyxrt (tests/fakes/fake_pyxrt.py:
failed runs, timeouts, allocation failures, at random with a seed) while a
program runs window after window, as the encoder does on a long file. The
device comes from the real selection code (select_device("npu", fallback)
on a FAKE machine), so fallback="allow" gets the FallbackDevice wrapper and
fallback="error" the bare XrtDevice. Every window must end either with the
emulator's exact bytes (the fallback announced once: warning + log + record)
or, with fallback="error", with a clear XdnaDeviceError; none may vanish.

Nothing here ran on an NPU: the FAKE stands in for XRT.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from test_runtime_select import fake_machine

import xdna_ep
from xdna_ep.compile.program import Program
from xdna_ep.runtime import (
    EmulatorDevice,
    FallbackDevice,
    XdnaDeviceError,
    XrtDevice,
    fallback_events,
    select_device,
)

from fakes.fake_hardware import write_fake_designs_for  # isort: skip
from fakes.fake_pyxrt import (  # isort: skip
    Faults, make_fake_pyxrt)
from fakes.real_chain import ffn_chain_program  # isort: skip

WINDOWS = 40
SEEDS = range(8)


def chain_program() -> Program:
    return ffn_chain_program("ffn_chain")


def all_designs() -> set[str]:
    """Every design a compiled program may name: the kernels/manifest.json designs and,
    since the compile stage names launches after their kernel, every kernel."""
    from xdna_ep.kernel_specs import registry

    doc = json.loads((Path(xdna_ep.__file__).parent / "_kernels" / "manifest.json")
                     .read_text()) if (Path(xdna_ep.__file__).parent / "_kernels").exists() \
        else {}
    return set(registry.KERNELS) | set(doc.get("designs", {}))


def fake_npu(root: Path, program: Program | Iterable[str], faults: Faults, fallback: str):
    """(device opened by the real selection code, its FAKE pyxrt) on a FAKE machine
    whose xclbin folder holds one FAKE xclbin per design (of `program`, or named)."""
    probes = fake_machine(root)
    xdir = root / "designs"
    designs = ([launch.design for launch in program.launches]
               if isinstance(program, Program) else list(program))
    manifest = write_fake_designs_for(xdir, designs)
    fake = make_fake_pyxrt(faults)
    probes = dataclasses.replace(probes, manifest=manifest, xclbin_dirs=(xdir,),
                                 import_pyxrt=lambda: fake)
    choice = select_device("npu", fallback, probes=probes)
    assert choice.name == "npu", choice.reason
    return choice.open(timeout_ms=250), fake


def windows(shape: tuple[int, ...] = (1, 150, 384)) -> list[np.ndarray]:
    return [np.random.default_rng(1000 + w).normal(0, 2, shape).astype(np.float32)
            for w in range(WINDOWS)]


def faults(seed: int) -> Faults:
    return Faults(random_rate=0.04, random_alloc_rate=0.01, seed=seed)


def _same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> bool:
    return got.keys() == want.keys() and all(
        got[k].shape == want[k].shape and got[k].tobytes() == want[k].tobytes() for k in want)


def run_allow(tmp_path: Path, program: Program, xs: list[np.ndarray], caplog) -> int:
    """Long runs with fallback="allow" over SEEDS; returns how many fell back."""
    emu = EmulatorDevice().load(program)
    wants = [emu.run({program.inputs[0].name: x}) for x in xs]
    fell_back = 0
    for seed in SEEDS:
        dev, _fake = fake_npu(tmp_path / f"allow{seed}", program, faults(seed), "allow")
        assert isinstance(dev, FallbackDevice)
        before = len(fallback_events())
        caplog.clear()
        with warnings.catch_warnings(record=True) as caught, \
                caplog.at_level(logging.WARNING, logger="xdna_ep.runtime"):
            warnings.simplefilter("always")
            loaded = dev.load(program)
            outs = [loaded.run({program.inputs[0].name: x}) for x in xs]
        assert len(outs) == len(xs)                       # no window lost
        for w, (got, want) in enumerate(zip(outs, wants, strict=True)):
            assert _same(got, want), f"seed {seed}: window {w} differs from the emulator"
        announced = [str(c.message) for c in caught
                     if "falling back to the emulator" in str(c.message)]
        logged = [r for r in caplog.records if "falling back" in r.getMessage()]
        # a fault is announced exactly once (warning + log + record), then quiet
        assert len(dev.events) <= 1
        assert len(announced) == len(logged) == len(dev.events), (announced, dev.events)
        assert fallback_events()[before:] == dev.events
        if dev.events:
            assert loaded.active_device == "emulator"
            assert dev.events[0].program == program.name and dev.events[0].reason
        fell_back += len(dev.events)
    return fell_back


def run_error(tmp_path: Path, program: Program, xs: list[np.ndarray]) -> tuple[int, int]:
    """Long runs with fallback="error": (windows with exact output, windows with a
    clear error) summed over SEEDS; every window is one or the other."""
    emu = EmulatorDevice().load(program)
    wants = [emu.run({program.inputs[0].name: x}) for x in xs]
    ok = failed = 0
    for seed in SEEDS:
        dev, _fake = fake_npu(tmp_path / f"error{seed}", program, faults(seed), "error")
        assert isinstance(dev, XrtDevice)
        try:
            loaded = dev.load(program)
        except XdnaDeviceError as exc:              # a fault while uploading constants
            assert exc.phase in ("load", "alloc") and str(exc)
            failed += len(xs)
            continue
        broken = False
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # no fallback may happen here
            for x, want in zip(xs, wants, strict=True):
                try:
                    got = loaded.run({program.inputs[0].name: x})
                except XdnaDeviceError as exc:
                    assert str(exc) and exc.phase in ("run", "alloc")
                    broken = True
                    failed += 1
                    continue
                assert not broken, "a run succeeded on a program after its NPU failure"
                assert _same(got, want)
                ok += 1
    assert ok + failed == len(SEEDS) * len(xs)
    return ok, failed


def test_long_run_random_faults_fall_back_announced(tmp_path, caplog):
    fell_back = run_allow(tmp_path, chain_program(), windows(), caplog)
    print(f"\n{len(SEEDS)} runs x {WINDOWS} windows, fallback=allow: {fell_back} fell back")
    assert fell_back >= 3          # the seeds do inject faults (else this proves nothing)


def test_long_run_random_faults_are_clear_errors_with_fallback_error(tmp_path):
    ok, failed = run_error(tmp_path, chain_program(), windows())
    print(f"\n{len(SEEDS)} runs x {WINDOWS} windows, fallback=error: {ok} exact, "
          f"{failed} clear errors")
    assert ok > 0 and failed > 0


def compiled_encoder_program() -> Program:
    """The NPU region of a Whisper-like encoder layer at tiny.en width, through the
    real partition + compile stages."""
    from synthetic import graphs as ms

    from xdna_ep.compile import CompileOptions, compile_plan
    from xdna_ep.partition import partition_model

    model = ms.encoder_layer(d=384, heads=6, ffn=1536, t=100)
    plan = partition_model(model)
    programs = compile_plan(model, plan, CompileOptions(quantization="dynamic"))
    assert len(programs) == 1
    return next(iter(programs.values()))


def _require_fake_can_run(tmp_path: Path, program: Program, x: np.ndarray) -> None:
    """xfail (visibly, with the reason) while the FAKE cannot run this program."""
    dev, _ = fake_npu(tmp_path / "probe", program, Faults(), "error")
    try:
        dev.load(program).run({program.inputs[0].name: x})
    except NotImplementedError as exc:
        if "prepare_device" not in str(exc):
            raise
        pytest.xfail(f"needs KernelSpec.prepare_device in the packed-constant kernels "
                     f"({exc}); the test runs as soon as the kernels provide it")


@pytest.mark.slow
def test_compiled_encoder_region_random_faults(tmp_path, caplog):
    program = compiled_encoder_program()
    xs = windows((1, 100, 384))[:12]
    _require_fake_can_run(tmp_path, program, xs[0])
    assert run_allow(tmp_path, program, xs, caplog) >= 1
    ok, failed = run_error(tmp_path, program, xs)
    assert ok > 0 and failed > 0


# -- the same through ONNX Runtime sessions and a whole transcription ---------------------
# Sessions with device=npu run their regions on the plugin library's native NPU
# backend, here built against the FAKE XRT library (tests/fakes/fake_xrt, NOT XRT;
# the `fake_npu` fixture of conftest.py), whose hardware injects the same faults.
def _plugin_faults(seed: int):
    from fakes.fake_hardware import Faults as PluginFaults

    return PluginFaults(random_rate=0.04, random_alloc_rate=0.01, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("fallback", ["allow", "error"])
def test_session_runs_under_random_faults(fallback, tmp_path, fake_npu):  # noqa: F811
    import onnx
    from synthetic import graphs as ms

    from xdna_ep.ort import InferenceSession, XDNAUnavailableError
    from xdna_ep.ort.errors import XDNAFallbackWarning
    from xdna_ep.ort.session import XDNARegionError

    xs = windows((1, 100, 384))[:12]
    path = tmp_path / "encoder_layer.onnx"
    onnx.save(ms.encoder_layer(d=384, heads=6, ffn=1536, t=100), str(path))
    providers = ["XDNAExecutionProvider", "CPUExecutionProvider"]
    clean = InferenceSession(str(path), providers=providers, provider_options=[
        {"cache_dir": str(tmp_path / "c"), "device": "emulator"}, {}])
    wants = [clean.run(None, {"hidden_states": x}) for x in xs]
    fell_back = 0
    for seed in range(4):
        fake_npu.reset(_plugin_faults(seed))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                sess = InferenceSession(str(path), providers=providers, provider_options=[
                    {"cache_dir": str(tmp_path / "c"), "device": "npu",
                     "fallback": fallback}, {}])
            except XDNAUnavailableError as exc:   # a fault while loading the regions
                assert fallback == "error" and "NPU" in str(exc)
                fell_back += 1
                continue
            assert sess.get_providers()[0] == "XDNAExecutionProvider"
            done = failed = 0
            for x, want in zip(xs, wants, strict=True):
                try:
                    got = sess.run(None, {"hidden_states": x})
                except XDNARegionError as exc:
                    assert fallback == "error" and str(exc)
                    failed += 1
                    continue
                assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want, strict=True))
                done += 1
        assert done + failed == len(xs)                       # no window lost
        announced = [c for c in caught if issubclass(c.category, XDNAFallbackWarning)
                     and "NPU" in str(c.message)]
        if fallback == "allow":
            assert failed == 0 and len(announced) <= sess.xdna_start.regions
            fell_back += len(announced)
        else:
            assert not announced
            fell_back += failed > 0
    assert fell_back >= 1


def _long_audio(tmp_path: Path) -> Path:
    import soundfile as sf

    from xdna_ep.whisper.audio import load_audio
    from xdna_ep.whisper.samples import list_samples

    clips = [load_audio(s.audio) for s in list_samples()]
    audio = np.concatenate(clips * (1 + int(65 * 16000 // sum(len(c) for c in clips))))
    path = tmp_path / "long.flac"
    sf.write(str(path), audio[:65 * 16000], 16000)
    return path


@pytest.mark.slow
def test_transcription_under_random_faults_loses_no_window(tmp_path, fake_npu):  # noqa: F811
    """A 3-window transcription on the FAKE NPU with random faults: the text equals
    the emulator's (fallback=allow, announced), or the run fails clearly
    (fallback=error); a shorter transcript would be a lost window."""
    from xdna_ep.ort import XDNAUnavailableError
    from xdna_ep.ort.errors import XDNAFallbackWarning
    from xdna_ep.ort.session import XDNARegionError
    from xdna_ep.whisper.api import transcribe
    from xdna_ep.whisper.model import LoadedModel as WhisperModel

    path = _long_audio(tmp_path)
    opts = {"quantization": "dynamic", "cache_dir": str(tmp_path / "cache")}
    clean = transcribe(path, model=WhisperModel.load(None, "emulator", opts), progress=False)
    assert clean.text.strip()
    fake_npu.reset(_plugin_faults(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        faulty = transcribe(path, model=WhisperModel.load(None, "npu", opts), progress=False)
    assert faulty.text == clean.text
    assert [(s.start, s.end, s.text) for s in faulty.segments] == \
        [(s.start, s.end, s.text) for s in clean.segments]
    told = [str(c.message) for c in caught if issubclass(c.category, XDNAFallbackWarning)]
    # the encoder (symbolic batch, sized at compile time) has NPU images: its regions
    # ran on the FAKE NPU and fell back from run faults, not from a missing image
    assert any("failed on the NPU" in m for m in told)
    assert not any("no NPU image" in m for m in told)
    assert fake_npu.calls("device.completed")
    fake_npu.reset(_plugin_faults(3))
    try:  # fallback=error: a clear error at load (a fault, or a model kept on CPU) or run
        strict = transcribe(path, model=WhisperModel.load(None, "npu", {**opts,
                                                                        "fallback": "error"}),
                            progress=False)
    except (XDNARegionError, XDNAUnavailableError) as exc:
        assert str(exc)
    else:
        assert strict.text == clean.text


# -- load-time faults ------------------------------------------------------------------------
def _register_fails():
    from fakes.fake_hardware import Faults as PluginFaults

    return PluginFaults(register_error="driver rejected the xclbin (EINVAL)")


def test_session_with_npu_load_failure(tmp_path, fake_npu):  # noqa: F811
    import onnx
    from synthetic import graphs as ms

    from xdna_ep.ort import InferenceSession, XDNAUnavailableError
    from xdna_ep.ort.errors import XDNAFallbackWarning

    path = tmp_path / "encoder_layer.onnx"
    onnx.save(ms.encoder_layer(d=384, heads=6, ffn=1536, t=100), str(path))
    providers = ["XDNAExecutionProvider", "CPUExecutionProvider"]
    x = windows((1, 100, 384))[0]
    clean = InferenceSession(str(path), providers=providers, provider_options=[
        {"cache_dir": str(tmp_path / "c"), "device": "emulator"}, {}])
    want = clean.run(None, {"hidden_states": x})
    fake_npu.reset(_register_fails())
    with pytest.warns(XDNAFallbackWarning, match="cannot run on the NPU"):
        sess = InferenceSession(str(path), providers=providers, provider_options=[
            {"cache_dir": str(tmp_path / "c"), "device": "npu"}, {}])
    assert sess.get_providers()[0] == "XDNAExecutionProvider"
    got = sess.run(None, {"hidden_states": x})
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want, strict=True))
    assert any("cannot run on the NPU" in f for f in sess.xdna_plan.fallbacks)
    with pytest.raises(XDNAUnavailableError, match="EINVAL"):
        InferenceSession(str(path), providers=providers, provider_options=[
            {"cache_dir": str(tmp_path / "c"), "device": "npu", "fallback": "error"}, {}])


@pytest.mark.slow
def test_transcription_with_npu_load_failure(tmp_path, fake_npu):  # noqa: F811
    """A 3-window transcription whose NPU fails to load every program: the same text
    as the emulator, the fallback announced; with fallback=error a clear error."""
    from xdna_ep.ort import XDNAUnavailableError
    from xdna_ep.ort.errors import XDNAFallbackWarning
    from xdna_ep.whisper.api import transcribe
    from xdna_ep.whisper.model import LoadedModel as WhisperModel

    path = _long_audio(tmp_path)
    opts = {"quantization": "dynamic", "cache_dir": str(tmp_path / "cache")}
    clean = transcribe(path, model=WhisperModel.load(None, "emulator", opts), progress=False)
    assert clean.text.strip() and clean.segments[-1].end > 60.0
    fake_npu.reset(_register_fails())
    with pytest.warns(XDNAFallbackWarning, match="cannot run on the NPU"):
        faulty = transcribe(path, model=WhisperModel.load(None, "npu", opts), progress=False)
    assert [(s.start, s.end, s.text) for s in faulty.segments] == \
        [(s.start, s.end, s.text) for s in clean.segments]
    # (the Whisper encoder's regions compile with a symbolic batch dim and carry the
    # NPU image of its compiled size: the refusal is the device's load failure)
    with pytest.raises(XDNAUnavailableError, match="cannot run on the NPU.*EINVAL"):
        WhisperModel.load(None, "npu", {**opts, "fallback": "error"})
