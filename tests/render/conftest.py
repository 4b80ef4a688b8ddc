"""Fixtures for the Render client and stage tests: a fake clock, the local Render in-process and on loopback."""

from __future__ import annotations

from typing import Iterator

import pytest
from render_fixtures import API_KEY, Counter, FakeClock, Render, StageHarness, make_client, make_emulator

from deploypipe.emulator import Emulator, EmulatorServer, in_process_client
from deploypipe.spec.targets import ServiceTarget, Targets


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def render(fake_clock: FakeClock) -> Iterator[Render]:
    emulator = make_emulator(fake_clock)
    counter = Counter()
    client = make_client(in_process_client(emulator, API_KEY), fake_clock, counter)
    yield Render(emulator, client, fake_clock, counter)
    client.close()


@pytest.fixture
def loopback(fake_clock: FakeClock) -> Iterator[tuple[Emulator, EmulatorServer]]:
    emulator = make_emulator(fake_clock)
    server = EmulatorServer(emulator).start()
    yield emulator, server
    server.stop()


@pytest.fixture
def git_repo(tmp_path) -> GitRepo:
    return GitRepo.create(tmp_path / "repo")


@pytest.fixture
def stages(render: Render, git_repo: GitRepo, tmp_path) -> StageHarness:
    targets = Targets(services={"web": ServiceTarget(name="web", repo_dir=str(git_repo.path)),
                                "worker": ServiceTarget(id="srv-wrk0000000000000000", repo_dir=str(git_repo.path))})
    return StageHarness(render=render, project_dir=tmp_path, targets=targets)


class GitRepo:
    """A real git repository with a ``main`` branch."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def create(cls, path) -> GitRepo:
        path.mkdir(parents=True)
        repo = cls(path)
        repo.git("init", "-q", "-b", "main")
        repo.git("config", "user.email", "t@example.test")
        repo.git("config", "user.name", "t")
        repo.commit("app.py", "print('v1')\n", "v1")
        return repo

    def git(self, *args: str) -> str:
        import subprocess

        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(self, name: str, text: str, message: str) -> str:
        (self.path / name).write_text(text)
        self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")
