"""The git repository the local Render builds from: the project's Blueprint and app, committed.

Render builds commits of a git repository; locally that repository lives in
``.deploypipe/local/repo``. Each run copies ``render.yaml`` and the app
directories of the working tree into it and commits when something changed,
so the deployed commit is always a real commit (replays add their bad
changes as commits on top).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from deploypipe.errors import StageErrored

__all__ = ["LocalRepo"]

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", ".deploypipe", ".pytest_cache", "*.egg-info")
_GIT_ENV = {"GIT_AUTHOR_NAME": "deploypipe local", "GIT_AUTHOR_EMAIL": "local@deploypipe.invalid",
            "GIT_COMMITTER_NAME": "deploypipe local", "GIT_COMMITTER_EMAIL": "local@deploypipe.invalid"}


class LocalRepo:
    def __init__(self, path: Path, branch: str = "main"):
        self.path = path
        self.branch = branch

    def git(self, *args: str, check: bool = True) -> str:
        import os

        result = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True,
                                env={**os.environ, **_GIT_ENV})
        if check and result.returncode != 0:
            raise StageErrored(f"git {' '.join(args)} failed: {result.stderr.strip()}", where=str(self.path))
        return result.stdout.strip()

    def ensure(self) -> None:
        if not (self.path / ".git").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self.git("init", "-q", "-b", self.branch)

    def sync_from(self, project_dir: Path, files: Iterable[str], message: str = "sync from the working tree") -> str:
        """Copy ``files`` (paths relative to ``project_dir``) in, commit if anything changed; return HEAD."""
        self.ensure()
        for rel in files:
            source, target = project_dir / rel, self.path / rel
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if source.is_dir():
                shutil.copytree(source, target, ignore=_IGNORE)
            elif source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        self.git("add", "-A")
        if self.git("status", "--porcelain"):
            self.git("commit", "-q", "-m", message)
        return self.head()

    def commit_change(self, writes: dict[str, str | None], message: str) -> str:
        """Write (or delete, for None) files and commit them; return the new commit."""
        for rel, content in writes.items():
            target = self.path / rel
            if content is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def reset_to(self, commit: str) -> None:
        self.git("reset", "-q", "--hard", commit)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")
