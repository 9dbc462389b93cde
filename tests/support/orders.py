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


def return_visit_message(session: Session, now: datetime, order: str, caller: str, *,
                         seconds: float = 7.5) -> int:
    """A voice message left on `order`'s return-visit call, as the engine and the recorder
    leave one: the job, its attempt dialled on an Asterisk id, the call's message recording
    indexed (no file). The recording's id; the caller commits."""
    from callcenter.outbound_service import channel_id
    from cti.db import outbound, recordings
    from outbound.outcome import Outcome
    from recorder.ports import RecordingFacts

    job = outbound.schedule(session, purpose="return_visit", number=caller, lang="zh",
                            now=now, created_by="system", work_order_number=order).job_id
    attempt = outbound.begin_attempt(session, job, now,
                                     lambda a: channel_id(a, "pbx1", now.timestamp()))
    assert attempt is not None
    outbound.finish_attempt(session, attempt, outcome=Outcome.ANSWERED, ended_at=now)
    [a] = outbound.attempts_of(session, job)
    call = str(a["linkedid"])
    rec = recordings.index_recording(session, RecordingFacts(
        rel_path=f"{now:%Y%m%d}/{call}_{call}_msg.wav", started_at=now, duration_s=seconds,
        size=int(seconds * 16000) + 44, sha256="0" * 64, indexed_by="event",
        caller_number=caller), now)
    return rec.id
