"""Region taps (provider/tap.h, xdna_ep/ort/taps.py): every region call of a plugin
session seen from Python, for xdna-ep's measuring tools (`bench accuracy`'s
observer, the self-test's twin)."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest

from xdna_ep import plugin
from xdna_ep.ort import InferenceSession
from xdna_ep.ort.errors import XDNARegionError
from xdna_ep.ort.provider import XDNAProvider
from xdna_ep.ort.taps import RegionCall, RegionTap
from xdna_ep.runtime import EmulatorDevice

EP = "XDNAExecutionProvider"


@pytest.fixture
def x():
    return np.random.default_rng(11).standard_normal((256, 384)).astype(np.float32)


def _session(cls, lm, tmp_path) -> InferenceSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(lm.model.SerializeToString(), providers=[EP],
                   provider_options=[{"device": "emulator", "cache_dir": str(tmp_path),
                                      "fallback": "error"}])


def test_a_tap_sees_every_region_call_with_its_programs_bytes(lm, x, tmp_path):
    calls: list[RegionCall] = []

    class Tapped(InferenceSession):
        def _xdna_on_region_call(self):  # type: ignore[no-untyped-def]
            return calls.append

    sess = _session(Tapped, lm, tmp_path)
    assert sess._xdna_native, "the session must run on the plugin library"
    y, z = sess.run(["y", "z"], {"x": x})
    provider = sess._xdna_provider_core
    assert len(calls) == 2 == len(provider.region_programs)
    assert {c.region for c in calls} == set(provider.region_names)
    for call in calls:
        rid, program = provider.region_of(call.region)
        assert list(call.inputs) == [t.name for t in program.inputs]
        assert list(call.outputs) == [t.name for t in program.outputs]
        # the tapped outputs are the plugin's: the Python emulator gives the same bytes
        again = EmulatorDevice().load(program).run(call.inputs)
        for name, got in call.outputs.items():
            np.testing.assert_array_equal(got, again[name])
    # what the graph computes after the regions (Relu, Sigmoid) from the tapped outputs
    outs = {k: v for c in calls for k, v in c.outputs.items()}
    np.testing.assert_array_equal(np.maximum(outs["h"], 0), y)
    assert z.shape == outs["h2"].shape
    sess._xdna_tap.close()


def test_the_providers_observer_runs_on_the_plugin_through_a_tap(lm, x, tmp_path):
    seen: list[tuple[int, str]] = []

    class Observed(InferenceSession):
        def _xdna_provider(self, options):  # type: ignore[no-untyped-def]
            return XDNAProvider(options, observe=lambda rid, prog, out: seen.append(
                (rid, prog.digest())))

    sess = _session(Observed, lm, tmp_path)
    assert sess._xdna_native
    sess.run(None, {"x": x})
    progs = sess._xdna_provider_core.region_programs
    assert sorted(seen) == sorted((rid, p.digest()) for rid, p in progs.items())


def test_an_exception_in_the_tap_fails_that_run_clearly_and_the_next_runs(lm, x, tmp_path):
    fail = [True]

    def on_call(call: RegionCall) -> None:
        if fail[0]:
            raise ValueError(f"tap broke on {call.region}")

    class Tapped(InferenceSession):
        def _xdna_on_region_call(self):  # type: ignore[no-untyped-def]
            return on_call

    sess = _session(Tapped, lm, tmp_path)
    with pytest.raises(XDNARegionError, match="region tap raised ValueError: tap broke on"):
        sess.run(None, {"x": x})
    fail[0] = False
    y = sess.run(["y"], {"x": x})[0]
    plain = _session(InferenceSession, lm, tmp_path)
    np.testing.assert_array_equal(y, plain.run(["y"], {"x": x})[0])


def test_an_unregistered_tap_token_is_refused_at_session_start(lm, tmp_path):
    tap = RegionTap(lambda call: None)
    token = tap.token
    tap.close()
    so = ort.SessionOptions()
    so.add_provider_for_devices(plugin.get_plugin_ep_devices("emulator"),
                                {"device": "emulator", "tap": str(token)})
    with pytest.raises(Exception, match="not a registered tap"):
        ort.InferenceSession(lm.model.SerializeToString(), so)
    so = ort.SessionOptions()
    so.add_provider_for_devices(plugin.get_plugin_ep_devices("emulator"),
                                {"device": "emulator", "tap": "x1"})
    with pytest.raises(Exception, match="must be a token"):
        ort.InferenceSession(lm.model.SerializeToString(), so)
