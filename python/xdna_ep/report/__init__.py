"""report stage of xdna-ep."""
