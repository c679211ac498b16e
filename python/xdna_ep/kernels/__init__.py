"""kernels stage of xdna-ep."""
