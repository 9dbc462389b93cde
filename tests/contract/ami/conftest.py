"""Fixtures for the AMI contract tests: a fake Asterisk manager on a real local socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.ami.fake_ami import FakeAmi


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = await FakeAmi().start()
    yield server
    await server.stop()
