// The agent's work around a call (issue 14 §6, what agents expect of Finesse, Connect's CCP and
// Genesys): the wrap-up code and note (话后处理) of the call on the card, the caller's history
// (their last calls and work orders, open or closed) beside the pop, and "my calls today".
// The server checks who may read and code a call; this page only shows what it is given.
import { api, ApiError, clear, clock, errorText, fmtTime, get, h, toast } from "./api.js";
import { t, tOr } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const W = {
  callId: null,      // the call the wrap-up form codes (the pop's, open or closed)
  codes: [],
  history: null,     // {calls, work_orders} of the call on the card
  myCalls: [],
  historySeq: 0,
};

// ------------------------------------------------------------------------ wrap-up (话后处理)

function fillCodes() {
  const sel = $("disp-code");
  const keep = sel.value;
  clear(sel, h("option", { value: "" }, t("disp.choose")),
    W.codes.map((c) => h("option", { value: c, "data-testid": "disp-option" }, tOr("disp", c))));
  sel.value = keep;
}

function renderSaved(call) {
  const box = $("disp-saved");
  if (call && call.disposition) {
    box.dataset.code = call.disposition;
    box.textContent = `${t("disp.saved")}: ${tOr("disp", call.disposition)}`
      + (call.disposed_at ? ` · ${fmtTime(call.disposed_at)}` : "");
  } else {
    delete box.dataset.code;
    box.textContent = "";
  }
}

/** The card shows this call now (a ring, or the same call closed): the form codes it. */
export function callShown(callId) {
  if (!callId) return;
  const form = $("disp-form");
  form.classList.remove("hidden");
  if (W.callId !== callId) {
    W.callId = callId;
    form.dataset.callId = callId;
    $("disp-code").value = "";
    $("disp-note").value = "";
    $("disp-error").textContent = "";
    $("nuisance-report").disabled = false;
    delete $("nuisance-report").dataset.done;
    renderSaved(null);
    loadHistory(callId);
  }
}

async function saveDisposition(ev) {
  ev.preventDefault();
  const code = $("disp-code").value;
  $("disp-error").textContent = "";
  if (!code) {
    $("disp-error").textContent = t("disp.choose");
    return;
  }
  const callId = W.callId;
  const button = $("disp-save");
  button.disabled = true;
  try {
    const note = $("disp-note").value.trim();
    const call = await api("PUT", `/api/calls/${encodeURIComponent(callId)}/disposition`,
      { code, note: note || null });
    if (W.callId === callId) renderSaved(call);
    toast(`${t("disp.saved")}: ${tOr("disp", code)}`, "ok");
    loadMyCalls();
  } catch (e) {
    $("disp-error").textContent = errorText(e);
  } finally {
    button.disabled = false;
  }
}

/** 骚扰来电: report the call on the card as abusive (issue 15 §3), once. Enough reports of a
 * number put it on the nuisance list, which the server says. */
async function reportNuisance() {
  const callId = W.callId;
  const button = $("nuisance-report");
  button.disabled = true;
  try {
    const r = await api("POST", `/api/calls/${encodeURIComponent(callId)}/nuisance`);
    button.dataset.done = r.listed ? "listed" : "reported";
    toast(r.listed ? t("call.nuisance_listed", { 1: r.number }) : t("call.nuisance_reported"),
      "ok");
  } catch (e) {
    if (e instanceof ApiError && e.status === 409) {
      button.dataset.done = "reported";
      toast(t("call.nuisance_reported"), "info");
    } else {
      button.disabled = false;
      $("disp-error").textContent = errorText(e);
    }
  }
}

// ------------------------------------------------------------------------- caller history

async function loadHistory(callId) {
  const seq = ++W.historySeq;
  try {
    const doc = await get(`/api/calls/${encodeURIComponent(callId)}/history`);
    if (seq !== W.historySeq) return; // the card moved on to another call meanwhile
    W.history = doc;
  } catch (e) {
    if (seq !== W.historySeq) return;
    W.history = { calls: [], work_orders: [] };
    if (!(e instanceof ApiError && e.status === 404)) toast(errorText(e), "error");
  }
  renderHistory();
}

function renderHistory() {
  const box = $("history");
  const doc = W.history;
  if (!doc) { clear(box); return; }
  box.dataset.callId = W.callId || "";
  clear(box,
    h("h3", {}, t("hist.calls")),
    doc.calls.length ? h("table", { "data-testid": "history-calls" },
      h("tbody", {}, doc.calls.map((c) => h("tr", { "data-testid": "history-call",
        "data-call-id": c.call_id },
      h("td", {}, fmtTime(c.started_at)),
      h("td", {}, c.answered ? (c.agent_id || "") : tOr("outcome", c.outcome)),
      h("td", { "data-testid": "history-disposition" },
        c.disposition ? tOr("disp", c.disposition) : t("common.none")),
      h("td", { class: "muted" }, c.agent_note || "")))))
      : h("p", { class: "muted", "data-testid": "history-no-calls" }, t("hist.no_calls")),
    h("h3", {}, t("hist.work_orders")),
    doc.work_orders.length ? h("table", { "data-testid": "history-orders" },
      h("tbody", {}, doc.work_orders.map((o) => h("tr", { "data-testid": "history-order",
        "data-number": o.number },
      h("td", {}, o.number), h("td", {}, tOr("wotype", o.type)),
      h("td", {}, tOr("wostatus", o.status)), h("td", {}, fmtTime(o.created_at))))))
      : h("p", { class: "muted" }, t("hist.no_work_orders")));
}

// ------------------------------------------------------------------------ my calls today

function todayStart() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

function talkSeconds(c) {
  if (!c.answered_at || !c.ended_at) return 0;
  return Math.max(0, (Date.parse(c.ended_at) - Date.parse(c.answered_at)) / 1000);
}

export async function loadMyCalls() {
  try {
    const list = await get(`/api/calls?from=${encodeURIComponent(todayStart())}&limit=200`);
    W.myCalls = Array.isArray(list) ? list : [];
  } catch (e) {
    if (!(e instanceof ApiError && (e.status === 401 || e.status === 403))) toast(errorText(e), "error");
    return;
  }
  renderMyCalls();
}

function renderMyCalls() {
  const answered = W.myCalls.filter((c) => c.answered_at);
  const talk = answered.reduce((s, c) => s + talkSeconds(c), 0);
  const sum = $("mycalls-summary");
  sum.dataset.count = String(answered.length);
  sum.textContent = t("mycalls.summary", { n: answered.length, talk: clock(talk),
    avg: clock(answered.length ? talk / answered.length : 0),
    coded: answered.filter((c) => c.disposition).length });
  clear($("mycalls"), W.myCalls.length ? W.myCalls.map((c) => h("tr", {
    "data-testid": "mycall", "data-call-id": c.call_id },
  h("td", {}, fmtTime(c.started_at)), h("td", {}, c.caller_number || ""),
  h("td", {}, c.answered_at ? clock(talkSeconds(c)) : tOr("outcome", c.outcome)),
  h("td", { "data-testid": "mycall-disposition" },
    c.disposition ? tOr("disp", c.disposition) : t("disp.uncoded")))) :
    h("tr", {}, h("td", { colspan: 4, class: "muted" }, t("mycalls.none"))));
}

// ------------------------------------------------------------------------------- setup

export async function initCallWork() {
  $("disp-form").addEventListener("submit", saveDisposition);
  $("nuisance-report").addEventListener("click", reportNuisance);
  try {
    W.codes = await get("/api/calls/dispositions");
  } catch (e) { toast(errorText(e), "error"); }
  fillCodes();
  loadMyCalls();
  document.addEventListener("langchange", () => {
    fillCodes();
    renderHistory();
    renderMyCalls();
    const saved = $("disp-saved").dataset.code;
    if (saved) renderSaved({ disposition: saved });
  });
}
