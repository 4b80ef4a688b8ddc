"""Loading and running pipelines: the loader, the runner, compensation, the journal, locks and the report."""
