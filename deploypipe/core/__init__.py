"""Small building blocks every layer may use: YAML, redaction, polling, processes, signal-safe critical sections, HTTP probes, findings, prompts."""
