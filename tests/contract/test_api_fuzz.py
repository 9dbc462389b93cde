"""API fuzzing: schemathesis generates requests from the desktop app's own OpenAPI spec (every
router registered in agent_desktop/app.py) and no response may be a server error (5xx).

Requests are sent as a supervisor (who may reach every operation) on a seeded SQLite database,
without Asterisk: live-service operations answer 409, which is fine; a 500 is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from agent_desktop.app import create_app
from agent_desktop.auth import start_session
from config.settings import load_settings
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.seeded_db import SeededDb

NOW = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
# ends the session the fuzzer itself uses
SKIP_OPERATIONS = {("POST", "/api/auth/logout")}
EXAMPLES = 8  # per operation and mode: the whole file stays under a minute


@dataclass
class Fuzzed:
    app: Any
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def fuzzed(seeded_db: SeededDb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    state: Path = tmp_path_factory.mktemp("fuzz")
    engine = make_engine(seeded_db(state, now=NOW))
    sessions = make_session_factory(engine)
    ctx = build_services(replace(load_settings(env={}), state_dir=state), sessions,
                         clock=lambda: NOW).web_context()
    tokens = {}
    with sessions.begin() as s:
        for user, role in (("S01", "supervisor"), ("A001", "agent"), ("admin", "admin")):
            tokens[role], _ = start_session(s, ctx, user_id=user, role=role,
                                            seat="seat01" if role == "agent" else None,
                                            lang="zh", now=NOW)
    yield Fuzzed(create_app(ctx), tokens)
    engine.dispose()


def _operations(app: Any, admin_token: str) -> list[Any]:
    # the spec is served to logged-in admins only
    api = schemathesis.openapi.from_asgi("/api/openapi.json", app,
                                         headers={"Authorization": f"Bearer {admin_token}"})
    ops = [r.ok() for r in api.get_all_operations()]
    return [op for op in ops if (op.method.upper(), op.path) not in SKIP_OPERATIONS]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_no_server_errors(fuzzed: Fuzzed, mode: GenerationMode) -> None:
    """Every operation, valid and invalid inputs, as a supervisor and as an agent."""
    failures: list[str] = []
    calls = 0
    ops = _operations(fuzzed.app, fuzzed.tokens["admin"])
    assert len(ops) >= 15, [op.label for op in ops]

    for op in ops:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            nonlocal calls
            for role in ("supervisor", "agent"):
                response = case.call(
                    headers={**(case.headers or {}),
                             "Authorization": f"Bearer {fuzzed.tokens[role]}"})
                calls += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} as {role}: "
                                    f"{response.status_code} {response.text[:300]}")

        try:
            fuzz()
        except Unsatisfiable:
            # nothing in this operation can be invalid (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, op.label
    assert calls >= len(ops) * 2
    print(f"fuzz {mode.value}: {len(ops)} operations, {calls} requests, no 5xx")
    assert not failures, "\n".join(failures[:20])
