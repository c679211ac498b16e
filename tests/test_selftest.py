"""`xdna-ep selftest`: the emulator against the numpy references, the NPU path through
the FAKE pyxrt (tests/fakes/fake_pyxrt.py, not XRT), a FAKE device that returns one
wrong byte (caught and named), ERT error states recorded, and a clear error for
--device npu without an NPU. Nothing here runs on an NPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xdna_ep.cli import main
from xdna_ep.runtime import XrtDevice
from xdna_ep.runtime.discovery import Probes
from xdna_ep.runtime.errors import DeviceUnavailableError
from xdna_ep.runtime.xclbins import design_entries, load_manifest
from xdna_ep.selftest import run_selftest
from xdna_ep.selftest.cases import all_cases
from xdna_ep.selftest.encoder import run_encoder_window

from fakes.fake_pyxrt import Faults, make_fake_pyxrt, write_fake_xclbin, write_instructions  # isort: skip

DESIGNS = {c.design for c in all_cases()}


def test_cases_cover_every_manifest_kernel_and_design() -> None:
    doc = load_manifest()
    assert set(doc["kernels"]) | set(doc["designs"]) == DESIGNS


@pytest.fixture()
def fake_npu(tmp_path: Path):
    """Fake xclbins + instruction files for every manifest design."""
    d = tmp_path / "xclbin"
    d.mkdir()
    manifest = load_manifest()
    for e in design_entries(manifest).values():
        write_fake_xclbin(d / e.xclbin, e.launch_design)
        write_instructions(d / e.insts, [0x06030100, 0x1, 0x2])
    return manifest, [d]


def _npu(fake_npu, faults: Faults | None = None, **kw):
    manifest, dirs = fake_npu
    fake = make_fake_pyxrt(faults)
    return fake, run_selftest("npu", pyxrt=fake, manifest=manifest, xclbin_dirs=dirs,
                              system=False, **kw)


def test_emulator_selftest_passes_every_design_and_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "selftest.json"
    rc = main(["selftest", "--device", "emulator", "--no-encoder", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    doc = json.loads(out.read_text())
    assert doc["passed"] and doc["device"] == "emulator" and doc["baseline"] == "reference"
    assert doc["ran_on_npu"] is False and "no NPU" in doc["note"]
    assert {c["design"] for c in doc["cases"]} == DESIGNS
    assert all(c["status"] == "pass" and c["seconds"] > 0 for c in doc["cases"])
    for design in DESIGNS:
        assert design in text
    assert "14/14 cases pass" in text and "PASSED" in text


def test_npu_through_fake_pyxrt_is_bit_exact_and_times_each_launch(fake_npu) -> None:
    fake, res = _npu(fake_npu, encoder=False)
    assert res.passed, res.failures
    assert {c.design for c in res.cases} == DESIGNS
    for c in res.cases:
        assert len(c.launches) == 1, c.design        # one case = one launch
        assert c.launches[0].state == "ERT_CMD_STATE_COMPLETED"
        assert c.launches[0].seconds > 0
        assert c.launches[0].xclbin.endswith(".xclbin")
    assert len([n for n, _ in fake.calls if n == "device.completed"]) == len(DESIGNS)


def test_a_device_returning_one_wrong_byte_fails_and_is_named(fake_npu) -> None:
    """The FAKE device flips one byte of ffn_block's OUT (the y slot): the selftest
    fails and names design, shape, output and the first differing byte offset."""
    manifest, dirs = fake_npu
    fake = make_fake_pyxrt()
    hub = fake.hub
    execute = hub._execute
    flip_at = 4 * 37 + 2          # a byte inside y row 0: fp32 element 37, byte 2

    def one_wrong_byte(k, bo_in, bo_out, bo_w, bo_params):
        state = execute(k, bo_in, bo_out, bo_w, bo_params)
        if k.ctx.xclbin.design == "ffn_block":
            bo_out.dev[flip_at] ^= 0x01
        return state

    hub._execute = one_wrong_byte
    res = run_selftest("npu", pyxrt=fake, manifest=manifest, xclbin_dirs=dirs, system=False,
                       encoder=False)
    assert not res.passed
    bad = [c for c in res.cases if c.status != "pass"]
    assert [c.design for c in bad] == ["ffn_block"]
    diff = bad[0].difference
    assert diff is not None and diff.output == "y" and diff.offset == flip_at
    assert diff.got == diff.expected ^ 0x01
    msg = res.failures[0]
    assert "ffn_block" in msg and bad[0].shape in msg and f"byte {flip_at}" in msg
    assert res.to_json()["failures"] == res.failures


def test_an_ert_error_state_is_recorded(fake_npu) -> None:
    _, res = _npu(fake_npu, Faults(run_states={3: "ERT_CMD_STATE_ERROR"}), encoder=False)
    errs = [c for c in res.cases if c.status == "error"]
    assert len(errs) == 1 and not res.passed
    assert errs[0].launches[0].state == "ERT_CMD_STATE_ERROR"
    assert "ERT_CMD_STATE_ERROR" in errs[0].error and errs[0].design in errs[0].error


def test_npu_without_an_npu_is_a_clear_error(tmp_path: Path) -> None:
    probes = Probes(dev_root=tmp_path / "accel", sys_root=tmp_path / "sys",
                    proc_modules=tmp_path / "modules")
    with pytest.raises(DeviceUnavailableError, match="no NPU device node") as info:
        run_selftest("npu", probes=probes, encoder=False, system=False)
    assert info.value.missing == "device-node"


def test_cli_npu_without_an_npu_says_why(monkeypatch, capsys) -> None:
    import xdna_ep.selftest.runner as R

    def unavailable(*a, **k):
        raise DeviceUnavailableError("no NPU device node (/dev/accel/accel* not found)",
                                     missing="device-node")
    monkeypatch.setattr(R, "open_npu", unavailable)
    assert main(["selftest", "--device", "npu", "--no-encoder"]) == 2
    err = capsys.readouterr().err
    assert "no usable NPU" in err and "device-node" in err and "--device emulator" in err


@pytest.fixture(scope="module")
def small_encoder(tmp_path_factory) -> Path:
    """A random-init Whisper encoder (d=128, 2 heads of 64, 1 layer) exported to ONNX."""
    from synthetic.checkpoints import SyntheticWhisper, write_synthetic_checkpoint

    from xdna_ep.models import ensure_onnx_model

    folder = tmp_path_factory.mktemp("ckpt")
    write_synthetic_checkpoint(folder, SyntheticWhisper(d_model=128, heads=2, ffn=512,
                                                        encoder_layers=1, decoder_layers=1,
                                                        dtype="float32"))
    return Path(ensure_onnx_model(folder)) / "encoder_model.onnx"


@pytest.mark.slow
def test_encoder_window_against_reference_and_fake_npu(small_encoder: Path, fake_npu) -> None:
    from xdna_ep.selftest.devices import ReferenceDevice

    ref = run_encoder_window(ReferenceDevice(), small_encoder)
    assert ref.status == "pass", ref.error or ref.difference
    assert ref.regions >= 1 and ref.calls >= 1
    assert ref.seconds > 0 and ref.baseline_seconds > 0   # emulator share, reference share
    manifest, dirs = fake_npu
    npu = run_encoder_window(XrtDevice(make_fake_pyxrt(), manifest=manifest,
                                       xclbin_dirs=dirs), small_encoder)
    assert npu.status == "pass", npu.error or npu.difference
    assert npu.calls == ref.calls


@pytest.mark.slow
def test_encoder_window_names_the_region_of_a_wrong_byte(small_encoder: Path, fake_npu) -> None:
    manifest, dirs = fake_npu
    fake = make_fake_pyxrt()
    execute = fake.hub._execute

    def corrupt(k, bo_in, bo_out, bo_w, bo_params):
        state = execute(k, bo_in, bo_out, bo_w, bo_params)
        bo_out.dev[0] ^= 0x80
        return state

    fake.hub._execute = corrupt
    res = run_encoder_window(XrtDevice(fake, manifest=manifest, xclbin_dirs=dirs),
                             small_encoder)
    assert res.status == "fail" and res.difference.startswith("region ")
    assert "byte 0" in res.difference
    assert np.isfinite(res.seconds)
