"""Region op families that exist only for tests (the registry's extension point)."""
