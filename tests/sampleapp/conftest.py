"""Sample app fixtures (defined in sampleapp_fixtures.py so test modules can import its helpers by a unique name)."""

from sampleapp_fixtures import migrated_app, migrated_url, new_database, pg, start_app  # noqa: F401
