"""runtime stage of xdna-ep."""
