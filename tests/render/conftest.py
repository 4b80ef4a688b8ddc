"""Fixtures for the Render client and stage tests: a fake clock, the local Render in-process and on loopback."""

from __future__ import annotations

from typing import Iterator

import pytest
from render_fixtures import API_KEY, Counter, FakeClock, Render, make_client, make_emulator

from deploypipe.emulator import Emulator, EmulatorServer, in_process_client


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
