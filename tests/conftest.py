"""Shared fixtures: the real content, loaded once per test session."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot import config
from bot.dispatcher import Dispatcher
from bot.knowledge import KnowledgeBase, load
from bot.store import Store
from bot.wiring import build_dispatcher
from tests.synapse_server import Synapse
from tests.telegram_emulator import Emulator

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to servers on this machine only; anything else fails loudly."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        remote = isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1"))
        if remote and self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"test tried to reach {host}: only loopback is allowed")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def settings() -> config.Settings:
    return replace(config.from_env({}), db_path=":memory:", pseudonym_key="test-key")


@pytest.fixture(scope="session")
def knowledge(settings: config.Settings) -> KnowledgeBase:
    return load(settings.content_dir, settings.languages)


@pytest.fixture
def store() -> Store:
    return Store(":memory:", "test-key")


@pytest.fixture
def dispatcher(settings: config.Settings, knowledge: KnowledgeBase, store: Store) -> Dispatcher:
    return build_dispatcher(settings, store=store, knowledge=knowledge)


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """One real homeserver for the test session (message rate limits raised; one test keeps the default)."""
    server = Synapse(tmp_path_factory.mktemp("synapse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A Telegram Bot API emulator on 127.0.0.1 for one test."""
    emulator = Emulator()
    await emulator.start()
    yield emulator
    await emulator.stop()
