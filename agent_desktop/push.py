"""WebSocket push at /ws: the CTI's MQTT events, filtered per user on the server."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
