"""Notify test fixtures (defined in notify_fixtures.py so test modules can import its names uniquely)."""

from notify_fixtures import receiver  # noqa: F401
