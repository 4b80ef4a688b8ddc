"""deploypipe: declarative, staged deploy pipelines for Render, with verified backups and automatic rollback.

Importing the package is cheap; the pieces are imported where they are used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
