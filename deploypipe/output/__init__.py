"""What people and CI systems see: log setup, console progress, the summary table, CI summaries."""
