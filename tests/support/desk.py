"""The web desktop's API in contract tests: a client signed in as a demo staff member."""

from __future__ import annotations

import httpx

from hotline.demo_seed import DEMO_PASSWORD


async def logged_in(transport: httpx.ASGITransport, user: str,
                    seat: str | None = None) -> httpx.AsyncClient:
    """A client of the app behind `transport`, logged in as `user` (at `seat`, for an agent)
    with the demo password; the login must succeed."""
    c = httpx.AsyncClient(transport=transport, base_url="http://desk")
    r = await c.post("/api/auth/login", json={"user_id": user, "password": DEMO_PASSWORD,
                                              **({"seat": seat} if seat else {})})
    assert r.status_code == 200, r.text
    return c
