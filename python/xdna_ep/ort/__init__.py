"""ort stage of xdna-ep."""
