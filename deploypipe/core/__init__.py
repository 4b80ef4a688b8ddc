"""Small building blocks every layer may use: YAML, redaction, polling, processes, HTTP probes, findings, prompts."""
