"""The agent desktop's ASGI app: routers under /api, JSON errors, the browser UI at /."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent_desktop.auth import User, require_role
from agent_desktop.context import WebContext
from agent_desktop.security import SecurityMiddleware
from cti.db import agents as db_agents

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Each feature's router: one line each, a module with a `router` (fastapi.APIRouter).
ROUTERS: tuple[str, ...] = (
    "agent_desktop.api.auth",
    "agent_desktop.api.agents",
    "agent_desktop.api.queues",
    "agent_desktop.api.calls",
    "agent_desktop.api.callers",
    "agent_desktop.api.calendars",
    "agent_desktop.api.workorders",
    "agent_desktop.api.click_to_call",
    "agent_desktop.api.supervision",
    "agent_desktop.api.recordings",
    "agent_desktop.api.alerts",
    "agent_desktop.api.outages",
    "agent_desktop.api.reports",
    "agent_desktop.api.outbound",
    "agent_desktop.api.admin",
    "agent_desktop.api.flows",
    "agent_desktop.api.department",
    "agent_desktop.push",
)

# domain errors (cti.db.agents) -> HTTP status; their messages carry no HTTP detail themselves
DOMAIN_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (db_agents.UnknownAgent, 404),
    (db_agents.AgentExists, 409),
    (db_agents.AlreadyLoggedIn, 409),
    (db_agents.SeatTaken, 409),
    (db_agents.NotLoggedIn, 409),
)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else
                     str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(db_agents.AgentError)
    async def agent_error(_req: Request, exc: db_agents.AgentError) -> JSONResponse:
        status = next((code for cls, code in DOMAIN_STATUS if isinstance(exc, cls)), 409)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(ValueError)
    async def bad_value(_req: Request, exc: ValueError) -> JSONResponse:
        # the domain layer says ValueError for bad input (see cti.db.agents); a clear 400
        return JSONResponse({"detail": str(exc) or "invalid value"}, status_code=400)

    @app.exception_handler(Exception)
    async def bug(req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", req.method, req.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)


# what every operation may answer besides its own (docs/api.md): not logged in, role or
# ownership, not found, a state or live service that does not allow it, schema mismatch
COMMON_ERRORS = {"400": "bad value", "401": "not logged in or session over",
                 "403": "role or ownership", "404": "not found",
                 "409": "the state does not allow it, or a live service is not running",
                 "422": "the request does not match the schema; the detail names the field"}
ERROR_SCHEMA = {"type": "object", "required": ["detail"], "additionalProperties": False,
                "properties": {"detail": {"type": "string"}}}


def _documented_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the API answers: every error is {"detail": "<sentence>"} (the handlers in
    _install_error_handlers), FastAPI's list-shaped 422 included, and every operation may
    answer the common errors. Done once on FastAPI's cached spec."""
    if spec.get("x-errors-documented"):
        return spec
    spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for item in spec.get("paths", {}).values():
        for op in item.values():
            responses = op.setdefault("responses", {})
            for code, what in COMMON_ERRORS.items():
                responses.setdefault(code, {"description": what})
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    response["content"] = body
    spec["x-errors-documented"] = True
    return spec


def create_app(ctx: WebContext) -> FastAPI:
    """The app for one CTI (or one test): everything it needs comes in ctx."""
    app = FastAPI(
        title="95598 hotline agent desktop API",
        version="1.0",
        description="Agents, queues, calls, work orders and recordings of the 95598 hotline. "
                    "Log in with POST /api/auth/login; the session is the `hotline_session` "
                    "cookie (or `Authorization: Bearer <token>`). See docs/api.md.",
        # served below, to logged-in admins only: the spec maps every operation for a prober
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    from agent_desktop.push import PushHub

    app.state.push = PushHub()
    # the ACD's events straight from its notifier (in-process); the rest from the bus
    app.state.push.attach(ctx.bus, getattr(ctx.acd, "notifier", None))
    _install_error_handlers(app)

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, Any]:
        """No login needed: is the API up, and which live services run."""
        return {"ok": True, "acd": ctx.acd is not None, "pbx": ctx.pbx is not None}

    for module in ROUTERS:
        app.include_router(importlib.import_module(module).router)

    admin = Depends(require_role("admin"))

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(_user: User = admin) -> JSONResponse:
        return JSONResponse(_documented_errors(app.openapi()))

    @app.get("/api/docs", include_in_schema=False)
    def docs(_user: User = admin) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title=app.title)

    app.add_middleware(SecurityMiddleware, max_body=ctx.settings.web.max_body_bytes,
                       tls=bool(ctx.settings.web.tls))
    # the browser UI last: it catches every path no router matched
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app
