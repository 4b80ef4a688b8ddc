"""The embedded local default: a local "production" (embedded PostgreSQL + local Render) for `invoke deploy`."""
