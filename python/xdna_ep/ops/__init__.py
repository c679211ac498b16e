"""Region op families: one module per kind of NPU operation (matmul, conv1d,
gelu, layernorm, attention, add), each owning its match, typed attrs, lowering
and stage emission; the table is xdna_ep.ops.registry (imported explicitly, so
that ops.base can be imported by capability/ and compile/ without a cycle)."""
