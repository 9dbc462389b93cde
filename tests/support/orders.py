"""Work orders for tests, made the way production makes them: workorders.service.create, as
the IVR files a caller's fault report (callcenter.ivr_services) or an agent accepts one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cti.db.models import WorkOrder
from workorders import service as wo
from workorders.lifecycle import SlaPolicy


def fault_report(session: Session, now: datetime, account_no: str | None = None, *,
                 caller: str = "13800000001", call_id: str | None = None,
                 actor: wo.Actor = wo.IVR, description: str = wo.IVR_FAULT_DESCRIPTION,
                 policy: SlaPolicy | None = None, link: bool = True) -> WorkOrder:
    """A fault-repair order accepted at `now`; by the IVR unless another actor is given. The
    caller commits. `link=False` keeps it from joining an open master order of its area."""
    channel = "ivr" if actor == wo.IVR else "agent"
    new = wo.NewOrder(type="fault_repair", description=description, caller_number=caller,
                      account_no=account_no, call_id=call_id, channel=channel)
    return wo.create(session, new, actor, now, policy or SlaPolicy(), link_duplicates=link)
