"""bench stage of xdna-ep."""
