"""quantize stage of xdna-ep."""
