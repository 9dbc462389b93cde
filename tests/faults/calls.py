"""What every caller of the fault harness lived through, read back from Asterisk's AMI events:
when it arrived, waited, rang a seat, was answered, failed over and hung up, and the longest
time it heard nothing (silence)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]
# dialplan applications that play something to the caller until the next priority runs
# (Newexten: only where the AMI user gets those events)
PLAYING_APPS = frozenset({"Playback", "Background", "Queue"})
# where the dialplan stops the music to play a prompt (extensions.conf.j2): the position and
# wait announcement, and the all-busy message before the hangup
PROMPT_AFTER_MUSIC = frozenset({("hotline-announce", "s"), ("hotline-wait", "busy")})


def ts(e: Event) -> float:
    return float(e.get("Timestamp") or e["_received"])


@dataclass
class CallerView:
    """One caller channel (from-carrier), named by its Uniqueid, which is the call's Linkedid."""

    uid: str
    channel: str
    number: str
    created: float
    queued: float | None = None
    offered: list[str] = field(default_factory=list)  # seats rung (HotlineOffer)
    answered: float | None = None
    seat: str | None = None
    failed_over: bool = False
    ended: float | None = None
    # silence: no music, no bridge, no prompt, from the first time it waited to its hangup
    max_silence_s: float = 0.0
    silence_at: float | None = None  # when the longest silence began
    _moh: bool = False
    _bridged: bool = False
    _playing: bool = False
    _in_queue: bool = False  # app_queue (failover) plays its own music and announcements
    _silent_since: float | None = None

    def _audible(self) -> bool:
        return self._moh or self._bridged or self._playing or self._in_queue

    def _update(self, t: float) -> None:
        """After a change at t: close or open a silence (only once the caller has waited)."""
        if self.queued is None:
            return
        if self._audible():
            if self._silent_since is not None:
                gap = t - self._silent_since
                if gap > self.max_silence_s:
                    self.max_silence_s, self.silence_at = gap, self._silent_since
                self._silent_since = None
        elif self._silent_since is None:
            self._silent_since = t


class CallBook:
    """Folds the AMI stream into CallerViews; feed it every event in order."""

    def __init__(self, service: str, prefix: str) -> None:
        self.service, self.prefix = service, prefix
        self.calls: dict[str, CallerView] = {}

    def feed_all(self, events: Iterable[Event]) -> CallBook:
        for e in events:
            self.feed(e)
        return self

    def feed(self, e: Event) -> None:
        name, uid = e.get("Event"), str(e.get("Uniqueid", ""))
        if name == "Newchannel":
            if (e.get("Context") == "from-carrier" and e.get("Exten") == self.service
                    and str(e.get("CallerIDNum", "")).startswith(self.prefix)):
                self.calls[uid] = CallerView(uid, str(e.get("Channel")),
                                             str(e.get("CallerIDNum")), ts(e))
            return
        c = self.calls.get(uid)
        if c is None or c.ended is not None:
            return
        t = ts(e)
        if name == "NewCallerid" and str(e.get("CallerIDNum", "")):
            c.number = str(e["CallerIDNum"])
        elif name == "UserEvent":
            kind = e.get("UserEvent")
            if kind == "HotlineQueued" and c.queued is None:
                c.queued = t
                c._silent_since = t  # until the music starts
            elif kind == "HotlineOffer":
                c.offered.append(str(e.get("Seat")))
            elif kind == "HotlineFailover":
                c.failed_over = True
        elif name == "MusicOnHoldStart":
            c._moh, c._playing = True, False
        elif name == "MusicOnHoldStop":
            c._moh = False
            c._playing = (e.get("Context"), e.get("Exten")) in PROMPT_AFTER_MUSIC
        elif name == "QueueCallerJoin":
            c._in_queue = True
        elif name == "QueueCallerLeave":
            c._in_queue = False
        elif name == "BridgeEnter":
            c._bridged = True
        elif name == "BridgeLeave":
            c._bridged = False
        elif name == "Newexten":
            c._playing = e.get("Application") in PLAYING_APPS
        elif name == "DialEnd" and e.get("DialStatus") == "ANSWER":
            c.answered = c.answered or t
            c.seat = str(e.get("DestChannel", "")).removeprefix("PJSIP/").split("-", 1)[0]
        elif name == "Hangup":
            c._moh = c._bridged = c._playing = True  # the end closes any silence
            c._update(t)
            c.ended = t
            return
        c._update(t)

    def in_flight(self, t: float) -> list[CallerView]:
        """Callers connected to the PBX at t."""
        return [c for c in self.calls.values()
                if c.created <= t and (c.ended is None or c.ended > t)]

    def silence_now(self, t: float) -> list[tuple[CallerView, float]]:
        """Callers silent at t, and for how long (a silence still open counts too)."""
        return [(c, t - c._silent_since) for c in self.calls.values()
                if c.ended is None and c._silent_since is not None]
