"""bridge.sandbox."""
