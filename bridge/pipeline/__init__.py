"""bridge.pipeline."""
