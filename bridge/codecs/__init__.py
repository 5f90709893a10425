"""bridge.codecs."""
