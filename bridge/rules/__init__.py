"""bridge.rules."""
