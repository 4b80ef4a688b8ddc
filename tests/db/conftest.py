"""Database test fixtures (defined in dbfixtures.py so test modules can import its helpers by a unique name)."""

from dbfixtures import alembic_project, new_db, pg_server  # noqa: F401
