// The supervisor console: live wallboard (big-screen mode ?big=1), agents with force state and
// logout, SLA clocks of work orders at risk, live calls with listen/whisper/barge, keyword
// alerts with their prefilled complaint order (keyword_alerts.js), recordings searched by
// transcript text and played beside their transcript (transcript.js), the post-call survey's
// figures per agent and per skill; the do-not-call list (dnc.js); the red storm banner while
// storm mode is on (storm.js).
import { ApiError, clear, clock, connectPush, del, errorText, everySecond, fmtTime, get, h,
  parseIso, pct, post, since, soon, toLogin, toast } from "./api.js";
import { lines } from "./charts.js";
import { applyI18n, bindLangToggle, t, tOr } from "./i18n.js";
import { dncPanel } from "./dnc.js";
import { numberListPanel } from "./number_list.js";
import { alertsPanel, isKeywordAlert, OpenAlerts, showCount } from "./keyword_alerts.js";
import { loadStorm, showStorm } from "./storm.js";
import { transcriptCell, transcriptView } from "./transcript.js";
import { CLOSED, dueOf, orderRow, tickSla } from "./workorders.js";

const $ = (id) => document.getElementById(id);
const STATES = ["ready", "reserved", "on_call", "wrap_up", "not_ready", "logged_out"];
const BIG = new URLSearchParams(location.search).get("big") === "1";

const S = {
  me: null,
  wb: { queues: [], today: {}, skills: [], trend: [], levels: {}, agents: [],
    at_risk_work_orders: [] },
  agents: new Map(),      // agent_id -> row
  queues: new Map(),      // skill -> stats
  calls: [],
  openOrders: [],
  session: null,          // the supervision session {session_id, call_id, mode}
  denied: false,
  recordings: [],         // the last search's items
  playing: "",            // what the player plays, as its caption says
  rvSeq: 0,               // the return-visit list's latest load; older answers are dropped
  rvMessages: [],         // the latest return-visit voice messages (回访留言)
  rvmSeq: 0,
  survey: null,           // the survey report last loaded (GET /api/reports/surveys)
  svSeq: 0,               // its latest load; older answers are dropped
};

if (BIG) {
  document.body.classList.add("big");
  $("big-link").href = "supervisor.html";
  $("big-link").dataset.i18n = "sup.exit_big_screen";
}
document.body.dataset.big = BIG ? "1" : "0";
bindLangToggle($("lang"));
applyI18n(document);

// ------------------------------------------------------------------------------- wallboard

function num(x) { return x === null || x === undefined ? 0 : Number(x); }

const LEVELS = ["ok", "amber", "red"];

/** The server's colour for a watched figure (config/wallboard.py): the tile shows it. */
function level(tileId, lvl) {
  const tile = $(tileId);
  for (const l of LEVELS) tile.classList.toggle(`lvl-${l}`, l === lvl);
  tile.dataset.level = lvl || "";
}

function renderTiles() {
  const qs = [...S.queues.values()];
  const today = S.wb.today || {};
  const levels = S.wb.levels || {};
  const waiting = qs.reduce((n, q) => n + num(q.waiting), 0);
  const longest = qs.reduce((m, q) => Math.max(m, num(q.longest_wait_s)), 0);
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const a of S.agents.values()) counts[a.state] = (counts[a.state] || 0) + 1;
  $("t-waiting").textContent = String(waiting);
  $("t-longest").textContent = clock(longest);
  $("t-longest").dataset.seconds = String(longest);
  $("t-ready").textContent = String(counts.ready);
  $("t-sl").textContent = pct(today.service_level);
  $("t-abr").textContent = pct(today.abandon_rate);
  $("t-ar").textContent = pct(today.answer_rate);
  $("t-offered").textContent = String(num(today.offered));
  $("t-answered").textContent = String(num(today.answered));
  $("t-abandoned").textContent = String(num(today.abandoned));
  $("t-deflected").textContent = String(num(today.deflected));
  for (const name of ["longest_wait", "agents_ready", "service_level", "abandon_rate"]) {
    level(`tile-${name}`, levels[name]);
  }
  clear($("state-counts"), STATES.filter((s) => s !== "logged_out").map((s) =>
    h("span", { class: `state-${s}`, "data-testid": `wb-count-${s}`, "data-count": counts[s] },
      `${tOr("state", s)} ${counts[s]}`)));
  // today's figures per skill from the server (the center tiles' definition, REPORTS.md),
  // the live queue (waiting, longest wait, agents) from the ACD's pushes beside them
  const todayBy = new Map((S.wb.skills || []).map((k) => [k.skill, k]));
  const skills = [...new Set([...todayBy.keys(), ...S.queues.keys()])].sort();
  clear($("queues"), skills.map((skill) => {
    const q = S.queues.get(skill) || {};
    const k = todayBy.get(skill) || {};
    const by = q.agents_by_state || q.agents || k.agents_by_state || {};
    return h("tr", { "data-testid": "wb-queue", "data-skill": skill },
      h("td", {}, tOr("skill", skill)), h("td", {}, num(q.waiting)),
      h("td", {}, clock(num(q.longest_wait_s))),
      h("td", { "data-testid": "wb-skill-offered" }, num(k.offered)),
      h("td", { "data-testid": "wb-skill-answered" }, num(k.answered)),
      h("td", { "data-testid": "wb-skill-abandoned" }, num(k.abandoned)),
      h("td", { "data-testid": "wb-skill-sl" }, pct(k.service_level)),
      h("td", {}, k.asa_s === null || k.asa_s === undefined ? "—" : clock(k.asa_s)),
      h("td", {}, k.aht_s === null || k.aht_s === undefined ? "—" : clock(k.aht_s)),
      h("td", {}, STATES.filter((s) => s !== "logged_out" && by[s])
        .map((s) => `${tOr("state", s)} ${by[s]}`).join(" · ")));
  }));
  const trend = S.wb.trend || [];
  const hhmm = (p) => (p ? String(p.at).slice(11, 16) : "");
  lines($("wb-trend"), trend, ["offered", "answered", "abandoned"], { prefix: "wb-trend",
    first: hhmm(trend[0]), last: hhmm(trend[trend.length - 1]), aria: t("sup.trend") });
}

function renderAgents() {
  const rows = [...S.agents.values()].filter((a) => a.state && a.state !== "logged_out")
    .sort((a, b) => a.agent_id.localeCompare(b.agent_id));
  if (!rows.length) {
    clear($("agents"), h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("common.none"))));
    return;
  }
  clear($("agents"), rows.map((a) => h("tr", {
    "data-testid": "wb-agent", "data-agent": a.agent_id, "data-state": a.state },
    h("td", {}, a.agent_id), h("td", {}, a.name || ""), h("td", {}, a.seat || ""),
    h("td", {}, h("span", { class: `state-badge state-${a.state} small-badge` },
      tOr("state", a.state), a.state === "not_ready" && a.reason ? ` · ${tOr("reason", a.reason)}` : "")),
    h("td", { class: "since", "data-since": a.since || "", "data-testid": "wb-agent-since" }),
    h("td", { class: "not-big" }, h("div", { class: "rowactions" },
      h("button", { type: "button", class: "secondary", "data-testid": "force-ready",
        onclick: () => force(a.agent_id, "ready") }, t("sup.force_ready")),
      h("button", { type: "button", class: "secondary", "data-testid": "force-not-ready",
        onclick: () => force(a.agent_id, "not_ready") }, t("sup.force_not_ready")),
      h("button", { type: "button", class: "danger", "data-testid": "force-logout",
        onclick: () => forceLogout(a.agent_id) }, t("sup.force_logout")))))));
  tick();
}

function renderOrders() {
  const risk = S.wb.at_risk_work_orders || [];
  const riskNos = new Set(risk.map((o) => o.number));
  const fill = (tbody, list) => clear(tbody, list.length ? list.map((o) => orderRow(o))
    : h("tr", {}, h("td", { colspan: 4, class: "muted" }, t("sup.no_orders"))));
  fill($("at-risk"), risk);
  // open orders with the nearest deadline first; those at risk are listed above already
  const open = S.openOrders.filter((o) => !riskNos.has(o.number) && !CLOSED.has(o.status))
    .sort((a, b) => (parseIso(dueOf(a)) || Infinity) - (parseIso(dueOf(b)) || Infinity));
  fill($("open-orders"), open.slice(0, 30));
  tickSla();
}

function applyWallboard(wb) {
  S.wb = { ...S.wb, ...wb };
  if (wb.queues) { S.queues.clear(); for (const q of wb.queues) S.queues.set(q.skill, q); }
  if (wb.agents) {
    S.agents.clear();
    for (const a of wb.agents) S.agents.set(a.agent_id, a);
  }
  renderTiles();
  renderAgents();
  renderOrders();
  $("main").dataset.updated = String(Date.now());
}

async function force(agentId, state) {
  try {
    await post(`/api/agents/${encodeURIComponent(agentId)}/state`,
      state === "not_ready" ? { state, reason: "supervisor" } : { state });
  } catch (e) { toast(errorText(e), "error"); }
}

async function forceLogout(agentId) {
  try { await post(`/api/agents/${encodeURIComponent(agentId)}/logout`); }
  catch (e) { toast(errorText(e), "error"); }
}

// ------------------------------------------------------------------------------- live calls

// a consult or a three-way conference on the call: who else is on it (issue 14 §5)
function consultNote(c) {
  const k = c.consult;
  if (!k) return null;
  const text = k.state === "conference"
    ? `${t("call.conference_of")}: ${(k.parties || []).join(", ")}`
    : `${t("call.consulting")}: ${k.agent_id || (k.outside ? `${t("call.outside")} ${k.outside.number}` : "")}`;
  return h("div", { class: "muted", "data-testid": "call-parties", "data-state": k.state,
    "data-parties": (k.state === "conference" ? k.parties || []
      : [k.first_agent, k.agent_id || (k.outside && k.outside.number)]).join(",") },
  text);
}

function renderCalls() {
  if (!S.calls.length) {
    clear($("calls"), h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("sup.no_live_calls"))));
    return;
  }
  clear($("calls"), S.calls.map((c) => h("tr", { "data-testid": "live-call", "data-call": c.call_id },
    h("td", {}, c.call_id), h("td", {}, c.caller_number || ""), h("td", {}, tOr("skill", c.skill)),
    h("td", {}, [c.agent_id, c.seat].filter(Boolean).join(" · "), consultNote(c)),
    h("td", { class: "since", "data-since": c.answered_at || c.queued_at || c.started_at || "" }),
    h("td", {}, h("div", { class: "rowactions" }, ["listen", "whisper", "barge"].map((mode) =>
      h("button", { type: "button", class: mode === "barge" ? "danger" : "secondary",
        // only a call connected to an agent can be listened to (a waiting or ringing one has
        // nobody to supervise yet)
        "data-testid": `sup-${mode}`, disabled: !c.agent_id || c.live_state !== "connected",
        onclick: () => supervise(c.call_id, mode) }, t(`sup.${mode}`))))))));
  tick();
}

function renderSession() {
  const box = $("supervising");
  if (!S.session) { box.classList.add("hidden"); clear(box); return; }
  box.classList.remove("hidden");
  box.dataset.mode = S.session.mode;
  clear(box, h("div", { class: "controls" },
    h("strong", {}, t("sup.supervising"), ": ", S.session.call_id, " · ", t(`sup.${S.session.mode}`)),
    ["listen", "whisper", "barge"].filter((m) => m !== S.session.mode).map((m) =>
      h("button", { type: "button", class: "secondary", "data-testid": `sup-mode-${m}`,
        onclick: () => switchMode(m) }, t(`sup.${m}`))),
    h("button", { type: "button", class: "danger", "data-testid": "sup-end",
      onclick: endSession }, t("sup.end_supervision"))));
}

async function supervise(callId, mode) {
  try {
    if (S.session) await endSession();
    const res = await post("/api/supervision", { call_id: callId, mode });
    S.session = { call_id: callId, mode, ...res };
    renderSession();
  } catch (e) { toast(errorText(e), "error"); }
}

async function switchMode(mode) {
  try {
    await post(`/api/supervision/${encodeURIComponent(S.session.session_id)}/mode`, { mode });
    S.session.mode = mode;
    renderSession();
  } catch (e) { toast(errorText(e), "error"); }
}

async function endSession() {
  if (!S.session) return;
  const id = S.session.session_id;
  S.session = null;
  renderSession();
  try { await del(`/api/supervision/${encodeURIComponent(id)}`); }
  catch (e) { if (!(e instanceof ApiError && e.status === 404)) toast(errorText(e), "error"); }
}

// ------------------------------------------------------------------------------- keyword alerts

const alerts = new OpenAlerts(() => {
  showCount($("t-kw-alerts"), alerts.count);
  showCount($("kw-count"), alerts.count);
  panel.render();
});
const panel = alertsPanel({ alerts, tbody: $("kw-alerts"), formBox: $("kw-form-box"),
  onPlay: (recordingId, at, a) => play(recordingId, { at, label: [a.call_id, a.caller_number]
    .filter(Boolean).join(" · "), scroll: true }) });
panel.render();
const dnc = dncPanel();
// the inbound caller lists (issue 15 §3): the IVR warns a nuisance number and ends the call;
// a VIP number is answered ahead of the queue. Both from the next call on
const nuisance = numberListPanel({ id: "nuisance", url: "/api/callers/nuisance", text: "nui",
  columns: 6, extra: (r) => [h("td", { "data-testid": "nuisance-reports" }, String(r.reports))] });
const vip = numberListPanel({ id: "vip", url: "/api/callers/vip", text: "vip" });

async function loadAlerts() {
  if (S.denied) return;
  try { await alerts.load(); } catch (e) { toast(errorText(e), "error"); }
}

function onKeywordAlert(data) {
  if (!alerts.pushed(data)) return;
  const a = alerts.items.get(data.alert_id ?? data.id);
  if (a && !BIG) {
    toast(t("kw.new_alert", { who: [a.seat, a.agent_id].filter(Boolean).join(" · "),
      words: [...new Set(a.keywords.map((k) => k.word))].join("、") }), "alert");
  }
}

// ------------------------------------------------------------------------------- recordings

const transcript = transcriptView($("player"), $("transcript"));

function isoOrNull(local) {
  if (!local) return null;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

$("rec-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const q = new URLSearchParams();
  for (const name of ["agent_id", "caller", "account", "work_order", "text"]) {
    if (f[name].value.trim()) q.set(name, f[name].value.trim());
  }
  for (const name of ["from", "to"]) {
    const iso = isoOrNull(f[name].value);
    if (iso) q.set(name, iso);
  }
  try {
    const res = await get(`/api/recordings?${q}`);
    S.recordings = Array.isArray(res) ? res : res.items || res.recordings || [];
    renderRecordings();
  } catch (e) { toast(errorText(e), "error"); }
});

function recLabel(r) {
  return [fmtTime(r.started_at), r.call_id, r.caller_number, r.agent_id].filter(Boolean).join(" · ");
}

function renderRecordings() {
  if (!S.recordings.length) {
    clear($("recordings"), h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("sup.no_recordings"))));
    return;
  }
  const playing = $("player").dataset.id;
  clear($("recordings"), S.recordings.map((r) => h("tr", {
    "data-testid": "recording", "data-id": r.id,
    class: String(r.id) === playing ? "rec-selected" : null },
    h("td", {}, fmtTime(r.started_at)), h("td", {}, r.caller_number || ""),
    h("td", {}, r.agent_id || ""),
    h("td", {}, r.duration_s !== undefined && r.duration_s !== null ? clock(r.duration_s) : ""),
    h("td", {}, (r.work_orders || []).map((o) => o.number).join(", "),
      r.message ? h("span", { class: "tag", "data-testid": "rec-message" }, t("rvm.tag")) : null),
    transcriptCell(r),
    h("td", {}, h("div", { class: "rowactions" },
      h("button", { type: "button", "data-testid": "rec-play",
        onclick: () => play(r.id, { label: recLabel(r) }) }, t("sup.play")),
      h("button", { type: "button", class: "secondary", "data-testid": "rec-play-phone",
        onclick: () => playToPhone(r.id) }, t("sup.play_to_phone")))))));
}

async function playToPhone(id) {
  try {
    await post(`/api/recordings/${encodeURIComponent(id)}/play-to-phone`);
    toast(t("sup.play_to_phone_started"), "ok");
  } catch (e) { toast(errorText(e), "error"); }
}

/** Play recording `id` (from `at` seconds) with its transcript beside the player. */
function play(id, { at = null, label = "", scroll = false } = {}) {
  const player = $("player");
  $("rec-view").classList.remove("hidden");
  S.playing = label || `#${id}`;
  $("rec-now").textContent = `${t("tr.now_playing")}: ${S.playing}`;
  if (player.dataset.id !== String(id)) {
    player.src = `/api/recordings/${encodeURIComponent(id)}/audio`;
    player.dataset.id = String(id);
    transcript.show(id);
    for (const row of document.querySelectorAll('[data-testid="recording"]')) {
      row.classList.toggle("rec-selected", row.dataset.id === String(id));
    }
  }
  if (at !== null) {
    // before its metadata the element keeps this as where playback starts; set it again
    // once the duration is known in case the browser dropped it
    player.currentTime = at;
    if (player.readyState < 1) {
      player.addEventListener("loadedmetadata", () => { player.currentTime = at; }, { once: true });
    }
  }
  player.play().catch(() => { /* autoplay may be refused; the controls are there */ });
  if (scroll) $("rec-view").scrollIntoView({ block: "nearest" });
}

// ------------------------------------------------------------------- post-call survey (满意度)
// the surveys offered on the chosen days (the center's calendar; today when none is chosen):
// per agent (the one who hung up) and per skill, how many callers were asked, how many rated
// the call, the average and each score's count

function fmtAverage(x) { return x === null || x === undefined ? "—" : Number(x).toFixed(2); }

function scoresText(scores) {
  return [1, 2, 3, 4, 5].map((k) => `${k}★ ${(scores || {})[k] ?? 0}`).join(" · ");
}

function surveyCells(f) {
  return [h("td", { "data-testid": "survey-offered" }, String(f.offered)),
    h("td", { "data-testid": "survey-answered" }, String(f.answered)),
    h("td", { "data-testid": "survey-average" }, fmtAverage(f.average)),
    h("td", { class: "muted" }, scoresText(f.scores))];
}

function renderSurvey() {
  const doc = S.survey;
  if (!doc) return;
  const total = $("sv-total");
  total.textContent = t("sv.total", { from: doc.from, to: doc.to, offered: doc.total.offered,
    answered: doc.total.answered, average: fmtAverage(doc.total.average) });
  total.dataset.offered = String(doc.total.offered);
  total.dataset.average = doc.total.average === null ? "" : String(doc.total.average);
  const none = (n) => h("tr", {}, h("td", { colspan: n, class: "muted" }, t("sv.none")));
  clear($("sv-agents"), doc.by_agent.length ? doc.by_agent.map((a) => h("tr", {
    "data-testid": "survey-agent", "data-agent": a.agent_id || "" },
    h("td", {}, a.agent_id || t("sv.unknown_agent")), h("td", {}, a.name || ""),
    ...surveyCells(a))) : none(6));
  clear($("sv-skills"), doc.by_skill.length ? doc.by_skill.map((k) => h("tr", {
    "data-testid": "survey-skill", "data-skill": k.skill || "" },
    h("td", {}, tOr("skill", k.skill)), ...surveyCells(k))) : none(5));
}

async function loadSurveys() {
  if (S.denied) return;
  const f = $("sv-form");
  const q = new URLSearchParams();
  if (f.from.value) q.set("from", f.from.value);
  if (f.to.value) q.set("to", f.to.value);
  const seq = ++S.svSeq;
  try {
    const qs = q.toString();
    const doc = await get(`/api/reports/surveys${qs ? `?${qs}` : ""}`);
    if (seq !== S.svSeq) return;  // a newer load (another range) is on its way
    S.survey = doc;
    renderSurvey();
  } catch (e) { if (!(e instanceof ApiError && e.status === 403)) toast(errorText(e), "error"); }
}

$("sv-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  loadSurveys();
});

// ------------------------------------------------------------------------------- refresh, push

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll(".since[data-since]")) {
    el.textContent = el.dataset.since ? clock(since(el.dataset.since, now)) : "";
  }
  tickSla(document, now);
  $("clock").textContent = new Date(now).toLocaleTimeString(
    document.documentElement.lang === "en" ? "en-GB" : "zh-CN", { timeZone: "Asia/Shanghai" });
}

function deny() {
  S.denied = true;
  $("main").classList.add("hidden");
  const d = $("denied");
  d.classList.remove("hidden");
  d.dataset.i18n = "err.forbidden";
  d.textContent = t("err.forbidden");
}

async function loadWallboard() {
  try {
    applyWallboard(await get("/api/wallboard"));
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return deny();
    if (e instanceof ApiError && e.status === 401) return toLogin("session");
    toast(errorText(e), "error");
  }
}

async function loadCalls() {
  if (BIG || S.denied) return;
  try {
    const res = await get("/api/calls?live=true");
    S.calls = Array.isArray(res) ? res : res.items || res.calls || [];
    renderCalls();
  } catch (e) { if (!(e instanceof ApiError && e.status === 403)) toast(errorText(e), "error"); }
}

async function loadOrders() {
  if (S.denied) return;
  try {
    const res = await get("/api/workorders?limit=100");
    S.openOrders = Array.isArray(res) ? res : res.items || res.work_orders || [];
    renderOrders();
  } catch (e) { if (!(e instanceof ApiError && e.status === 403)) toast(errorText(e), "error"); }
}

// ------------------------------------------------------------------- return visits (回访)
// resolved orders waiting for their return visit; one click dials it through the outbound
// engine (issue 14), or says why not (no trunk: call by hand)

// a clicked call (priority 10) waiting for the next tick, or one being dialled
const RV_CLICKED = 10;
function rvDialling(o) {
  const c = o.return_visit_call;
  return Boolean(c && (c.state === "dialing"
    || (c.state === "scheduled" && c.priority >= RV_CLICKED)));
}

function rvButton(o) {
  const dialling = rvDialling(o);
  const c = o.return_visit_call;
  const button = h("button", { type: "button", class: "secondary", "data-testid": "rv-call",
    "data-state": dialling ? "dialling" : "idle",
    onclick: (ev) => callReturnVisit(o.number, ev.currentTarget) },
  t(dialling ? "rv.dialling" : "rv.call_now"));
  button.disabled = dialling;
  const last = c && c.last_outcome && !dialling
    ? h("div", { class: "muted", "data-testid": "rv-last" },
      t("rv.last") + tOr("rvout", c.last_outcome)) : null;
  return last ? [button, last] : [button];
}

async function loadReturnVisits() {
  if (S.denied) return;
  try {
    const seq = ++S.rvSeq;
    const list = await get("/api/workorders/return-visits?limit=30");
    // a click answered while this was on its way: its own reload draws the list
    if (seq !== S.rvSeq) return;
    clear($("return-visits"), list.length ? list.map((o) => h("tr", {
      "data-testid": "rv-row", "data-number": o.number },
      h("td", {}, o.number), h("td", {}, tOr("wotype", o.type)),
      h("td", {}, fmtTime(o.resolved_at)),
      h("td", { class: "not-big" }, ...rvButton(o))))
      : h("tr", {}, h("td", { colspan: 4, class: "muted" }, t("sup.no_orders"))));
  } catch (e) { if (!(e instanceof ApiError && e.status === 403)) toast(errorText(e), "error"); }
}

async function callReturnVisit(number, button) {
  button.disabled = true;
  try {
    await post(`/api/workorders/${encodeURIComponent(number)}/return-visit-call`);
    // the server now says "dialling" for this order; a refresh already on its way (sent
    // before the click) is dropped, so the list cannot be drawn back to "call now"
    S.rvSeq += 1;
    button.textContent = t("rv.dialling");
    button.dataset.state = "dialling";
    toast(`${t("rv.dialling")} ${number}`, "info");
    loadReturnVisits();
  } catch (e) {
    button.disabled = false;
    toast(errorText(e), "error");
  }
}

// ------------------------------------------------------- return-visit messages (回访留言)
// the voice messages customers left on their return-visit call (issue 14 §2), each with its
// order; played in the console's player like any recording (the server checks the role)

async function loadRvMessages() {
  if (S.denied) return;
  try {
    const seq = ++S.rvmSeq;
    const list = await get("/api/workorders/return-visit-messages?limit=20");
    if (seq !== S.rvmSeq) return;
    S.rvMessages = list;
    renderRvMessages();
  } catch (e) { if (!(e instanceof ApiError && e.status === 403)) toast(errorText(e), "error"); }
}

function renderRvMessages() {
  const list = S.rvMessages;
  clear($("rv-messages"), list.length ? list.map((m) => h("tr", {
    "data-testid": "rvm-row", "data-number": m.number, "data-id": m.recording_id },
  h("td", {}, m.number),
  h("td", { "data-testid": "rvm-verdict" }, tOr("rvm", m.satisfaction || "none")),
  h("td", {}, fmtTime(m.started_at)),
  h("td", {}, clock(m.duration_s || 0)),
  h("td", { class: "not-big" }, h("button", { type: "button", "data-testid": "rvm-play",
    onclick: () => play(m.recording_id, { label: `${t("rvm.label")} ${m.number}`, scroll: true }) },
  t("sup.play")))))
    : h("tr", {}, h("td", { colspan: 5, class: "muted" }, t("sup.no_orders"))));
}

async function refreshAll() {
  await loadWallboard();
  if (S.denied) return;
  await Promise.all([loadCalls(), loadOrders(), loadStorm(), loadAlerts(), loadReturnVisits(),
    loadSurveys(), loadRvMessages(), BIG ? null : dnc.load(),
    BIG ? null : nuisance.load(), BIG ? null : vip.load()]);
}

// bursts of call events (offered, answered, ended, ...) refresh the lists once

function onPush(type, data) {
  if (type === "wallboard") applyWallboard(data);
  else if (type === "storm") showStorm(data);
  else if (type === "queue_stats" && data.skill) {
    S.queues.set(data.skill, { ...(S.queues.get(data.skill) || {}), ...data });
    renderTiles();
  } else if (type === "agent_state" && data.agent_id) {
    S.agents.set(data.agent_id, { ...(S.agents.get(data.agent_id) || {}), ...data });
    renderTiles();
    renderAgents();
  } else if (type === "call_event") {
    soon("calls", loadCalls);
    soon("wallboard", loadWallboard, 500);
    // a caller rated a call (or was asked to): the report counts it
    if (data && data.event === "survey") soon("surveys", loadSurveys, 500);
  } else if (isKeywordAlert(type, data)) onKeywordAlert(data);
  else if (type === "sla_alert") {
    soon("orders", loadOrders);
    soon("wallboard", loadWallboard, 500);
  }
}

async function start() {
  try {
    S.me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  $("who").textContent = `${S.me.name || ""} ${S.me.user_id}`;
  if (!["supervisor", "admin"].includes(S.me.role)) {
    // the server refuses the console's API to agents; ask it anyway so the refusal is its own
    await loadWallboard();
    if (!S.denied) deny();
    return;
  }
  $("nav-admin").classList.toggle("hidden", S.me.role !== "admin");  // staff and skills
  // REST first: the console works before (and without) the push; every (re)connect re-fetches
  refreshAll();
  connectPush({
    onOpen: refreshAll,
    onStatus: (up) => {
      const c = $("conn");
      c.classList.toggle("off", !up);
      c.dataset.online = up ? "1" : "0";
      // data-i18n: a language switch translates it again (applyI18n)
      c.dataset.i18n = up ? "conn.online" : "conn.offline";
      c.textContent = t(c.dataset.i18n);
    },
    onMessage: onPush,
  });
  everySecond(tick);
  // a slow safety net under the push: figures such as 'today' are recomputed on the server
  setInterval(() => { if (!document.hidden) refreshAll(); }, 15000);
}

$("logout").addEventListener("click", async () => {
  try { await post("/api/auth/logout"); } catch { /* gone */ }
  toLogin("");
});
document.addEventListener("langchange", () => {
  renderTiles();
  renderAgents();
  renderOrders();
  renderCalls();
  renderSession();
  renderSurvey();
  renderRvMessages();
  dnc.relabel();
  nuisance.relabel();
  vip.relabel();
  panel.relabel();
  if (S.recordings.length) renderRecordings();
  if (S.playing) $("rec-now").textContent = `${t("tr.now_playing")}: ${S.playing}`;
  transcript.refresh();
  if (S.denied) deny();
});

start();
