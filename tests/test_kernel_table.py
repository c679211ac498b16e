"""KernelSpec is the one per-kernel table: every kernel of the manifest has a spec
with its reference, output shapes, device constants and manifest version, and
every stage an op family emits names such a kernel (they agree before any run)."""

from __future__ import annotations

import pytest

from xdna_ep.kernel_specs import manifest, registry
from xdna_ep.ops import registry as ops


@pytest.mark.parametrize("name", manifest.REQUIRED_KERNELS)
def test_every_manifest_kernel_has_a_complete_spec(name: str) -> None:
    spec = registry.get(name)
    assert spec.name == name
    for hook in (spec.prepare, spec.run, spec.reference, spec.macs, spec.device_constants,
                 spec.output_specs):
        assert callable(hook), f"{name}: missing {hook!r}"
    assert spec.version == manifest.load().kernel(name).kernel_version


def test_every_emitted_stage_kernel_is_in_the_table() -> None:
    emitted = {r.kernel for family in ops.OPS for r in family.stages}
    assert emitted == {"matmul", "gelu", "layernorm", "attention", "add", "conv1d"}
    for kernel in emitted:
        assert registry.get(kernel).version >= 1
