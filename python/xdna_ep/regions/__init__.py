"""regions stage of xdna-ep."""
