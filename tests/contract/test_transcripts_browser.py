"""The console's transcripts and keyword alerts (issue 13) in a real browser against the real web
app (create_app) on a seeded SQLite database, without Asterisk or vosk: the transcripts, jobs and
alerts are rows as the transcription worker leaves them, the recordings real wavs on disk.

A supervisor finds a recording by what was said, plays it beside its transcript and seeks by
clicking a word; sees the open keyword alerts (loaded over REST, and one pushed live), plays one
from its keyword, files the prefilled complaint order it offers (which the API then has, linked
to the call) and dismisses another; the wallboard, its big screen and the outage board count
them; an agent is refused all of it by the server. Debian's chromium under Playwright; every
wait is an `expect` or a `wait_for_function` that retries until its deadline."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from agent_desktop.push import FILTERS
from config.topics import SUPERVISOR_ALERTS_TOPIC, keyword_alert_payload
from cti.db.models import Account, Call
from cti.db.models_transcripts import KeywordAlert, Transcript, TranscriptionJob
from cti.db.recordings import RecordingFacts, index_recording
from recorder.audio import inspect
from tests.support.browser import login, screenshot
from tests.support.wav import write_tone_wav

# db, base_url, chromium and page: tests/contract/conftest.py (the browser desktop over a
# seeded SQLite city of 200 accounts, one per module)

CALLER = "13900005555"       # the call whose transcript has the keyword
OTHER_CALLER = "13900006666"  # calls without a transcript: queued, failed, never
# vosk's Mandarin output: words with their start, end and confidence
WORDS = [("您好", 0.3, 0.8), ("我", 1.0, 1.2), ("要", 1.2, 1.4), ("投诉", 2.0, 2.6),
         ("你们", 2.8, 3.2), ("停电", 3.3, 3.9), ("太", 4.0, 4.2), ("久", 4.2, 4.5),
         ("了", 4.5, 4.7), ("媒体", 6.0, 6.5), ("会", 6.6, 6.8), ("曝光", 7.0, 7.6)]
TONE_S = 30.0  # long enough that a word clicked is still being played when the test looks


@dataclass(frozen=True)
class Seeded:
    done: int          # recording ids
    queued: int
    untranscribed: int
    failed: int
    pushed: int        # the recording of the alert pushed live (its row is added later)
    alert: int         # the open alert on `done`, loaded over REST
    account_no: str
    call_id: str


def _recording(sessions: Any, storage: Any, call_id: str, seat: str, caller: str,
               started: datetime, account_no: str | None = None,
               agent_id: str | None = None) -> int:
    rel = f"{started:%Y%m%d}/{call_id}_{call_id[:-1]}9_{seat}.wav"
    write_tone_wav(storage / rel, TONE_S, amplitude=3000)
    facts = inspect(storage / rel)
    with sessions.begin() as s:
        s.add(Call(call_id=call_id, uniqueid=call_id, caller_number=caller, dnis="95598",
                   started_at=started, answered_at=started + timedelta(seconds=5),
                   ended_at=started + timedelta(seconds=5 + TONE_S), outcome="transfer",
                   account_no=account_no, skill="general", seat=seat, agent_id=agent_id,
                   ivr_path=[]))
        s.flush()
        rec = index_recording(s, RecordingFacts(
            rel_path=rel, started_at=started, duration_s=facts.duration_s, size=facts.size,
            sha256=facts.sha256, indexed_by="event", queue="general", caller_number=caller),
            started + timedelta(seconds=40))
        return rec.id


@pytest.fixture(scope="module")
def seeded(db: tuple[Any, Any]) -> Seeded:
    settings, sessions = db
    storage = settings.recorder.storage_dir
    now = datetime.now(UTC)
    t0 = now - timedelta(minutes=20)
    with sessions() as s:
        account_no = s.scalar(select(Account.account_no).order_by(Account.id))
    assert account_no
    done = _recording(sessions, storage, "1795100001.1", "seat07", CALLER, t0, account_no,
                      "A007")
    queued = _recording(sessions, storage, "1795100002.1", "seat08", OTHER_CALLER,
                        t0 + timedelta(minutes=2))
    never = _recording(sessions, storage, "1795100003.1", "seat08", OTHER_CALLER,
                       t0 + timedelta(minutes=4))
    failed = _recording(sessions, storage, "1795100005.1", "seat08", OTHER_CALLER,
                        t0 + timedelta(minutes=5))
    pushed = _recording(sessions, storage, "1795100004.1", "seat09", "13900007777",
                        t0 + timedelta(minutes=6))
    with sessions.begin() as s:
        s.add(TranscriptionJob(recording_id=done, state="done", attempts=1, lang="zh",
                               queued_at=t0 + timedelta(minutes=1),
                               started_at=t0 + timedelta(minutes=1),
                               finished_at=t0 + timedelta(minutes=2)))
        s.add(Transcript(recording_id=done, lang="zh", text=" ".join(w for w, _s, _e in WORDS),
                         words=[{"w": w, "s": a, "e": b, "c": 0.92} for w, a, b in WORDS],
                         model="/opt/vosk/vosk-model-cn-0.22",
                         created_at=t0 + timedelta(minutes=2)))
        s.add(TranscriptionJob(recording_id=queued, state="queued", attempts=0,
                               queued_at=t0 + timedelta(minutes=3)))
        s.add(TranscriptionJob(recording_id=failed, state="failed", attempts=3, lang="zh",
                               last_error="no vosk model for zh",
                               queued_at=t0 + timedelta(minutes=5),
                               finished_at=t0 + timedelta(minutes=6)))
        alert = KeywordAlert(recording_id=done, call_id="1795100001.1", seat="seat07",
                             agent_id="A007", caller_number=CALLER,
                             keywords=[{"word": "投诉", "start": 2.0},
                                       {"word": "媒体", "start": 6.0},
                                       {"word": "曝光", "start": 7.0}],
                             excerpt="我要投诉你们停电太久了，媒体会曝光",
                             raised_at=t0 + timedelta(minutes=2), status="open")
        s.add(alert)
        s.flush()
        alert_id = alert.id
    return Seeded(done, queued, never, failed, pushed, alert_id, account_no, "1795100001.1")


def _search(page: Any) -> None:
    """Submit the recordings search and wait for the API's answer (its status checked), so
    that what the list shows next is that answer's. A clean-clone run once saw no row at all
    15 s after the click, with nothing to tell whether the search had even been sent."""
    with page.expect_response(lambda r: "/api/recordings?" in r.url) as answer:
        page.get_by_test_id("rec-search-submit").click()
    assert answer.value.ok, (answer.value.status, answer.value.text())


def test_a_transcript_search_finds_the_recording_and_a_clicked_word_seeks_the_player(
        page: Any, base_url: str, seeded: Seeded) -> None:
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    expect(page.get_by_test_id("who")).to_contain_text("S01")  # the console has started
    page.get_by_test_id("rec-text").fill("投诉")
    _search(page)
    rows = page.get_by_test_id("recording")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_have_attribute("data-id", str(seeded.done))
    expect(row.get_by_test_id("rec-transcript-status")).to_have_attribute("data-status", "done")
    expect(row.get_by_test_id("rec-transcript-status")).to_have_text("已转写")
    expect(row.get_by_test_id("rec-keyword")).to_have_text(["投诉", "媒体", "曝光"])
    # a word that was never said finds nothing
    page.get_by_test_id("rec-text").fill("电费")
    _search(page)
    expect(rows).to_have_count(0)
    expect(page.get_by_test_id("recordings")).to_contain_text("无录音")

    page.get_by_test_id("rec-text").fill("停电")
    _search(page)
    expect(rows).to_have_count(1)
    rows.first.get_by_test_id("rec-play").click()
    player = page.get_by_test_id("rec-player")
    expect(player).to_be_visible()
    expect(player).to_have_attribute("data-id", str(seeded.done))
    words = page.get_by_test_id("transcript-word")
    expect(words).to_have_count(len(WORDS))
    expect(words).to_have_text([w for w, _s, _e in WORDS])
    marked = page.locator('[data-testid="transcript-word"][data-keyword="1"]')
    expect(marked).to_have_text(["投诉", "媒体", "曝光"])
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 20",
                           arg=player.element_handle())

    # clicking 停电 (3.3 s) seeks there and plays on
    word = words.nth(5)
    expect(word).to_have_attribute("data-start", "3.3")
    word.click()
    page.wait_for_function("a => a.currentTime >= 3.25 && a.currentTime < 9",
                           arg=player.element_handle())
    # then 媒体 (6.0 s): the player jumps forward
    words.nth(9).click()
    page.wait_for_function("a => a.currentTime >= 5.95 && a.currentTime < 12",
                           arg=player.element_handle())
    # paused, the word lit is the one being spoken at the player's position
    player.evaluate("a => a.pause()")
    page.wait_for_function("""a => {
        const lit = document.querySelectorAll('[data-testid="transcript-word"][data-speaking="1"]');
        if (lit.length !== 1) return false;
        const t = a.currentTime;
        return +lit[0].dataset.start <= t && t <= +lit[0].dataset.end + 0.3;
    }""", arg=player.element_handle())
    # back to 投诉: the highlight follows a seek made by clicking
    words.nth(3).click()
    player.evaluate("a => a.pause()")
    page.wait_for_function("a => a.currentTime >= 1.95 && a.currentTime < 2.9",
                           arg=player.element_handle())
    expect(words.nth(3)).to_have_attribute("data-speaking", "1")
    screenshot(page, "contract-transcript-beside-player")

    # calls without a transcript say so, in the list and beside the player
    page.get_by_test_id("rec-text").fill("")
    page.locator("#r-caller").fill(OTHER_CALLER)
    _search(page)
    expect(rows).to_have_count(3)
    queued = page.locator(f'[data-testid="recording"][data-id="{seeded.queued}"]')
    never = page.locator(f'[data-testid="recording"][data-id="{seeded.untranscribed}"]')
    expect(queued.get_by_test_id("rec-transcript-status")).to_have_attribute("data-status",
                                                                              "queued")
    expect(never.get_by_test_id("rec-transcript-status")).to_have_attribute("data-status", "none")
    queued.get_by_test_id("rec-play").click()
    status = page.locator('[data-testid="transcript"] [data-testid="transcript-status"]')
    expect(status).to_have_attribute("data-status", "queued")
    expect(status).to_contain_text("排队")
    expect(page.get_by_test_id("transcript-word")).to_have_count(0)
    failed = page.locator(f'[data-testid="recording"][data-id="{seeded.failed}"]')
    expect(failed.get_by_test_id("rec-transcript-status")).to_have_attribute("data-status",
                                                                              "failed")
    failed.get_by_test_id("rec-play").click()
    expect(status).to_have_attribute("data-status", "failed")
    expect(page.get_by_test_id("transcript-error")).to_have_text("no vosk model for zh")
    never.get_by_test_id("rec-play").click()
    expect(status).to_have_attribute("data-status", "none")
    expect(status).to_have_text("该录音没有转写文本")

    # and in English
    page.get_by_test_id("lang-toggle").click()
    expect(status).to_have_text("This recording has no transcript")
    expect(never.get_by_test_id("rec-transcript-status")).to_have_text("None")
    expect(page.locator("#kw-h")).to_contain_text("Keyword alerts")


def test_an_alert_plays_from_its_keyword_and_files_the_prefilled_complaint_order(
        page: Any, base_url: str, seeded: Seeded, db: tuple[Any, Any]) -> None:
    _settings, sessions = db
    login(page, base_url, "S02")
    page.wait_for_url("**/supervisor.html")
    row = page.locator(f'[data-testid="kw-alert"][data-id="{seeded.alert}"]')
    expect(row.get_by_test_id("kw-alert-word")).to_have_text(["投诉", "媒体", "曝光"])
    expect(row.get_by_test_id("kw-alert-who")).to_have_text("seat07 · A007")
    expect(row.get_by_test_id("kw-alert-caller")).to_have_text(CALLER)
    expect(row.get_by_test_id("kw-alert-excerpt")).to_have_text("我要投诉你们停电太久了，媒体会曝光")
    expect(page.get_by_test_id("wb-keyword-alerts")).to_have_attribute(
        "data-count", re.compile(r"^[1-9]\d*$"))

    # play: the recording from the first keyword (投诉, 2.0 s), its transcript beside
    row.get_by_test_id("kw-play").click()
    player = page.get_by_test_id("rec-player")
    expect(player).to_have_attribute("data-id", str(seeded.done))
    page.wait_for_function("a => a.readyState >= 1 && a.currentTime >= 1.95 && a.currentTime < 9",
                           arg=player.element_handle())
    expect(page.get_by_test_id("transcript-word")).to_have_count(len(WORDS))

    # the complaint order, prefilled from the call
    row.get_by_test_id("kw-complaint-open").click()
    form = page.get_by_test_id("kw-complaint-form")
    expect(form.get_by_test_id("kw-prefill-type")).to_have_attribute("data-type", "complaint")
    expect(form.get_by_test_id("kw-prefill-type")).to_have_text("投诉")
    expect(form.get_by_test_id("kw-prefill-caller")).to_have_text(CALLER)
    expect(form.get_by_test_id("kw-prefill-call")).to_have_text(seeded.call_id)
    expect(form.get_by_test_id("kw-prefill-account")).to_have_text(seeded.account_no)
    description = form.get_by_test_id("kw-description")
    expect(description).not_to_have_value("")
    screenshot(page, "contract-keyword-alert-complaint-form")
    text = "客户称停电太久，扬言找媒体曝光，要求当天回电"
    description.fill(text)
    form.get_by_test_id("kw-complaint-submit").click()
    number_el = page.get_by_test_id("kw-order-number")
    expect(number_el).to_have_text(re.compile(r"^\w{6,11}$"))
    expect(row).to_have_count(0)  # handled: no longer open
    number = number_el.text_content() or ""
    screenshot(page, "contract-keyword-alert-order-created")

    # the order exists, a complaint linked to the call, with the description as edited
    r = page.request.get(f"{base_url}/api/workorders/{number}")
    assert r.status == 200, r.text()
    order = r.json()
    assert (order["type"], order["call_id"], order["description"]) == (
        "complaint", seeded.call_id, text)
    with sessions() as s:
        alert = s.get(KeywordAlert, seeded.alert)
        assert alert is not None
        assert (alert.status, alert.work_order_number) == ("order_created", number)
    r = page.request.get(f"{base_url}/api/alerts/keywords", params={"status": "open"})
    assert seeded.alert not in [a["id"] for a in r.json()]


def test_a_pushed_alert_shows_live_counts_on_the_wallboards_and_can_be_dismissed(
        page: Any, base_url: str, seeded: Seeded, db: tuple[Any, Any]) -> None:
    _settings, sessions = db
    sockets: list[Any] = []
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: sockets.append(ws))
    login(page, base_url, "S03")
    page.wait_for_url("**/supervisor.html")
    expect(page.locator("body")).to_have_attribute("data-push-connects", "1")
    count = page.get_by_test_id("wb-keyword-alerts")
    expect(count).to_have_attribute("data-count", re.compile(r"^\d+$"))
    expect(page.get_by_test_id("kw-alerts-panel")).not_to_contain_text("13900007777")
    before = int(count.get_attribute("data-count") or 0)

    # the worker commits the alert, then the push brings it (publish after commit)
    raised = datetime.now(UTC)
    with sessions.begin() as s:
        alert = KeywordAlert(recording_id=seeded.pushed, call_id="1795100004.1", seat="seat09",
                             agent_id="A009", caller_number="13900007777",
                             keywords=[{"word": "律师", "start": 1.5}],
                             excerpt="我会请律师", raised_at=raised, status="open")
        s.add(alert)
        s.flush()
        alert_id = alert.id
    assert len(sockets) == 1
    # as the /ws relay sends it: the notifier's payload on the supervisors' alerts topic, under
    # the type the relay gives that topic
    sockets[0].send(json.dumps({"type": FILTERS[SUPERVISOR_ALERTS_TOPIC],
                                "data": keyword_alert_payload(
        alert_id=alert_id, recording_id=seeded.pushed, call_id="1795100004.1", seat="seat09",
        agent_id="A009", caller_number="13900007777", keywords=[{"word": "律师", "start": 1.5}],
        excerpt="我会请律师", at=raised)}))
    row = page.locator(f'[data-testid="kw-alert"][data-id="{alert_id}"]')
    expect(row.get_by_test_id("kw-alert-word")).to_have_text(["律师"])
    expect(row.get_by_test_id("kw-alert-excerpt")).to_have_text("我会请律师")
    expect(page.get_by_test_id("toast-alert")).to_contain_text("律师")
    expect(count).to_have_attribute("data-count", str(before + 1))
    expect(page.get_by_test_id("kw-alert-count")).to_have_text(str(before + 1))
    # the same alert again, as the contract's own type (a repeat): still one row
    sockets[0].send(json.dumps({"type": "keyword_alert", "data": {
        "alert_id": alert_id, "recording_id": seeded.pushed, "call_id": "1795100004.1",
        "keywords": [{"word": "律师", "start": 1.5}], "excerpt": "我会请律师",
        "at": raised.isoformat()}}))
    expect(count).to_have_attribute("data-count", str(before + 1))
    expect(row).to_have_count(1)
    screenshot(page, "contract-keyword-alert-pushed")

    # the big screen and the outage board count the open alerts (loaded over REST)
    page.goto(f"{base_url}/supervisor.html?big=1")
    expect(page.get_by_test_id("wb-keyword-alerts")).to_be_visible()
    expect(page.get_by_test_id("wb-keyword-alerts")).to_have_text(str(before + 1))
    expect(page.get_by_test_id("kw-dismiss").first).to_be_hidden()  # no actions on the wall
    page.goto(f"{base_url}/board.html")
    expect(page.get_by_test_id("board-keyword-alerts")).to_have_text(str(before + 1))

    page.goto(f"{base_url}/supervisor.html")
    row.get_by_test_id("kw-dismiss").click()
    expect(row).to_have_count(0)
    expect(page.get_by_test_id("wb-keyword-alerts")).to_have_attribute("data-count", str(before))
    with sessions() as s:
        got = s.get(KeywordAlert, alert_id)
        assert got is not None and got.status == "dismissed"


def test_an_agent_is_refused_transcripts_and_alerts_by_the_server(
        page: Any, base_url: str, seeded: Seeded) -> None:
    login(page, base_url, "A001", seat="seat01")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("who")).to_contain_text("A001")
    for path in ("/api/alerts/keywords?status=open", f"/api/alerts/keywords/{seeded.alert}/prefill",
                 f"/api/recordings/{seeded.done}/transcript", "/api/recordings?text=投诉"):
        r = page.request.get(f"{base_url}{path}")
        assert r.status == 403, (path, r.status, r.text())
    for path, body in ((f"/api/alerts/keywords/{seeded.alert}/complaint", {"description": "x"}),
                       (f"/api/alerts/keywords/{seeded.alert}/dismiss", {})):
        r = page.request.post(f"{base_url}{path}", data=body, headers={"Origin": base_url})
        assert r.status == 403, (path, r.status, r.text())
    page.goto(f"{base_url}/supervisor.html")
    expect(page.get_by_test_id("access-denied")).to_contain_text("无权访问")
    expect(page.get_by_test_id("kw-alerts-panel")).to_be_hidden()
    expect(page.get_by_test_id("kw-alert")).to_have_count(0)
    expect(page.get_by_test_id("toast-error")).to_have_count(0)
