"""compile stage of xdna-ep."""
