"""A department's own orders (issue 15 §1): a repair crew's, marketing's or metering's user logs
in and works the orders dispatched to their department: accept (接单), on site (到达现场),
resolved (处理完成). Until now a supervisor recorded these for them.

Only department users reach these paths, and they reach nothing else (agent_desktop.auth's
DEPARTMENT_PATHS). They see the orders whose department is theirs (workorders.service.
DepartmentVisibility); another department's order is a 404 to them, as for an agent. The
lifecycle core decides the steps (a department may not dispatch, visit or archive), and the
service refuses a step on an order that has moved to another department.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from agent_desktop.api.workorders import ERRORS, _call, _service
from agent_desktop.auth import User, ctx_of, require_role
from workorders import lifecycle as lc
from workorders.service import Actor, DepartmentVisibility, SearchQuery

router = APIRouter(prefix="/api/department", tags=["department"])
department_only = Depends(require_role("department"))

# what each list shows: the work to do, and what they finished
SCOPES: dict[str, tuple[str, ...]] = {
    "open": ("dispatched", "department_accepted", "on_site"),
    "done": ("resolved", "return_visit", "archived"),
}


class StepIn(BaseModel):
    to: Literal["department_accepted", "on_site", "resolved"]
    note: str | None = Field(default=None, max_length=2000, examples=["已更换表计"])


def _visible(user: User) -> DepartmentVisibility:
    if user.department is None:  # the database's CHECK makes this impossible; never all orders
        raise HTTPException(403, "this account has no department")
    return DepartmentVisibility(user.user_id, department=lc.Department(user.department))


@router.get("/orders", responses=ERRORS)
def orders(request: Request,
           scope: Annotated[Literal["open", "done"], Query()] = "open",
           limit: Annotated[int, Query(ge=1, le=200)] = 100,
           user: User = department_only) -> dict[str, Any]:
    """The department's orders: `open` (to accept, to reach, to resolve: oldest SLA first) or
    `done` (resolved and after: newest first)."""
    svc = _service(ctx_of(request))
    page = _call(lambda: svc.search(SearchQuery(statuses=SCOPES[scope], limit=limit,
                                                visible=_visible(user))))
    items = page["items"]
    if scope == "open":  # the most urgent first: the SLA clock that runs out first
        items.sort(key=lambda r: (r.get("sla_due_at") is None, str(r.get("sla_due_at") or "")))
    return {"department": user.department, "scope": scope, "items": items,
            "total": page["total"]}


@router.get("/orders/{number}", responses=ERRORS)
def order(request: Request, number: str, user: User = department_only) -> dict[str, Any]:
    """One of the department's orders with its history and SLA clocks."""
    svc = _service(ctx_of(request))
    return _call(lambda: svc.get(number, visible=_visible(user)))


@router.post("/orders/{number}/step", responses=ERRORS)
def step(body: StepIn, request: Request, number: str,
         user: User = department_only) -> dict[str, Any]:
    """Take the department's next step on the order: department_accepted, on_site, resolved."""
    svc = _service(ctx_of(request))
    visible = _visible(user)
    actor = Actor(user.user_id, lc.Role.DEPARTMENT, visible.department)
    return _call(lambda: svc.transition(number, body.to, actor, note=body.note,
                                        visible=visible))
