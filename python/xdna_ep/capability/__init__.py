"""capability stage of xdna-ep."""
