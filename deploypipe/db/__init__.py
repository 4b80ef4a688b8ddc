"""Database safety: verified backups, migration state checks, migration lint, staging dry runs, locked migrations."""
