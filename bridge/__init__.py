"""meisa-bridge: drive Meisa lifecycle email from the events you already publish to Kafka."""

__version__ = "0.1.0"
