"""whisper stage of xdna-ep."""
