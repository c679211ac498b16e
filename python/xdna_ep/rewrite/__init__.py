"""rewrite stage of xdna-ep."""
