"""The Stage protocol, the context stages run in, the explicit registry, and the stage types."""
