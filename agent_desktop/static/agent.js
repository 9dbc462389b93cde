// The agent desktop: state bar, screen-pop while the seat rings, call control with timers,
// one-click prefilled work order, wrap-up countdown, my work orders.
import {
  ApiError, clear, clock, connectPush, errorText, everySecond, fmtTime, get, h, post, since, toast,
  toLogin, yuan,
} from "./api.js";
import { applyI18n, bindLangToggle, getLang, t, tOr } from "./i18n.js";
import { accountOf, CLOSED, orderRow, tickSla, WORK_ORDER_TYPES } from "./workorders.js";
import { callShown, initCallWork, loadMyCalls } from "./callwork.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_WRAP_UP_S = 15; // hotline.toml [acd] wrap_up_s, when the server does not say

const S = {
  me: null,          // {user_id, role, name, seat}
  agent: null,       // the last agent state: {state, reason, since, call_id, seat, ...}
  pop: null,         // the screen-pop on screen
  held: false,
  consult: null,     // the call's consult or conference (GET /api/calls/{id}'s consult)
  placed: null,      // the call id of this agent's last click-to-call: cancellable while it rings
  wrapUpS: DEFAULT_WRAP_UP_S,
  orders: [],
};

bindLangToggle($("lang"));
applyI18n(document);
for (const ty of WORK_ORDER_TYPES) $("wo-type").append(h("option", { value: ty, "data-i18n": `wotype.${ty}` }));
applyI18n($("wo-type"));

// ------------------------------------------------------------------------------- state bar

// ------------------------------------------------------------------------------- ringing
// The seat rings: the agent hears a tone from the page (their phone may be on mute or across
// the room), the tab's title flashes, and, where allowed, the desktop shows a notification
// (issue 14 §6: agents expect it of Finesse, Connect's CCP and Genesys).
const TITLE = document.title;
const ring = { timer: null, audio: null, note: null };

function ringTone() {
  try {
    ring.audio = ring.audio || new AudioContext();
    const ctx = ring.audio;
    for (const at of [0, 0.25]) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.05;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.15);
    }
  } catch { /* no audio here: the title and the notification still tell */ }
}

function ringing(on) {
  document.body.dataset.ringing = on ? "1" : "0";
  if (on && !ring.timer) {
    let flip = false;
    const flash = () => {
      flip = !flip;
      document.title = flip ? `【${t("ring.title")}】${TITLE}` : TITLE;
      if (flip) ringTone();
    };
    flash();
    ring.timer = setInterval(flash, 1000);
    if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
      ring.note = new Notification(t("ring.title"), { body: S.pop ? S.pop.caller_number : "" });
    }
  } else if (!on && ring.timer) {
    clearInterval(ring.timer);
    ring.timer = null;
    document.title = TITLE;
    if (ring.note) { ring.note.close(); ring.note = null; }
  }
}

function renderState() {
  const a = S.agent || { state: "logged_out" };
  ringing(a.state === "reserved");
  const el = $("state");
  el.className = `state-badge state-${a.state}`;
  el.dataset.state = a.state;
  el.dataset.reason = a.reason || "";
  let text = tOr("state", a.state);
  if (a.state === "not_ready" && a.reason === "wrap_up") text = t("reason.wrap_up");
  else if (a.state === "not_ready" && a.reason) text += ` · ${tOr("reason", a.reason)}`;
  el.textContent = text;
  const busy = ["reserved", "on_call"].includes(a.state);
  $("btn-ready").disabled = busy || a.state === "ready";
  $("btn-not-ready").disabled = busy;
  // in wrap-up the button asks for more time: the countdown starts again
  $("btn-wrap-up").disabled = busy || a.state === "logged_out";
  const onCall = a.state === "on_call";
  if (onCall && !S.targetsFor) loadTransferTargets();
  S.targetsFor = onCall ? a.call_id || true : null;
  const k = onCall ? S.consult : null;
  // a call the agent placed (click-to-call) or a queued callback: the customer is on a leg the
  // seat's own dial holds, so only hang-up applies (the server refuses the rest too)
  const placed = Boolean(S.pop && S.pop.callback && S.pop.call_id === a.call_id);
  const control = onCall && !placed;
  $("btn-hold").disabled = !control || !!k;
  $("btn-transfer").disabled = !control || !!k;
  for (const key of document.querySelectorAll("#dtmf-keys button")) key.disabled = !control || !!k;
  renderConsult(k, control);
  // hang-up also cancels the agent's own click-to-call while their seat still rings
  const cancellable = a.state === "reserved" && !!a.call_id && a.call_id === S.placed;
  $("btn-hangup").disabled = !((onCall && a.call_id) || cancellable);
  $("btn-hold").dataset.held = S.held ? "1" : "0";
  $("btn-hold").textContent = S.held ? t("call.unhold") : t("call.hold");
  const status = $("call-status");
  status.dataset.state = a.state;
  if (a.state === "reserved") status.textContent = t("pop.ringing");
  else if (onCall) status.textContent = S.held ? t("call.on_hold") : tOr("state", "on_call");
  else status.textContent = t("call.none");
  $("wrapup").classList.toggle("hidden", a.state !== "wrap_up");
  $("btn-wo").disabled = !((S.pop && !S.pop.closed) || a.call_id);
  tick();
}

function tick() {
  readConsult();
  const a = S.agent;
  const now = Date.now();
  $("state-time").textContent = a && a.since ? clock(since(a.since, now)) : "";
  const timer = $("call-timer");
  if (a && ["reserved", "on_call"].includes(a.state)) {
    timer.textContent = clock(since(a.since, now));
    timer.dataset.running = "1";
  } else {
    timer.dataset.running = "0";
    // the last call's length stays on screen through wrap-up; otherwise no call, no time
    if (!a || a.state !== "wrap_up") timer.textContent = clock(0);
  }
  if (a && a.state === "wrap_up") {
    const left = Math.max(0, S.wrapUpS - since(a.since, now));
    $("wrapup-left").textContent = `${Math.ceil(left)} ${t("call.seconds")}`;
    $("wrapup").dataset.left = String(Math.ceil(left));
  }
  tickSla(document, now);
}

async function setState(state, reason) {
  try {
    // the answer is the agent as the ACD now has it; the push confirms it too
    onAgentState(await post(`/api/agents/${encodeURIComponent(S.me.user_id)}/state`,
      reason ? { state, reason } : { state }));
  } catch (e) {
    toast(errorText(e), "error");
  }
}

function onAgentState(data) {
  if (!S.me || (data.agent_id && data.agent_id !== S.me.user_id)) return;
  // an older state than the one shown (a REST read answered after a newer push) changes
  // nothing: it would close the pop of the call the agent is on
  const seen = S.agent && S.agent.since ? Date.parse(S.agent.since) : NaN;
  if ((data.since ? Date.parse(data.since) : -Infinity) < seen) return;
  // a supervisor signed this agent out: say so at once, not as an expired session a REST call
  // later (issue 14 §6: for about 20 s the page still offered its buttons)
  if (data.state === "logged_out" && data.reason === "supervisor") return toLogin("forced");
  // the pop's call is over for this agent (after its wrap-up, a missed ring, another call):
  // a closed card, no 一键建单 for it any more (issue 14 §6: it stayed live into the next call)
  if (S.pop && !S.pop.closed && (["ready", "not_ready", "logged_out"].includes(data.state)
      || (data.call_id && data.call_id !== S.pop.call_id))) closePop();
  const prevCall = S.agent && S.agent.call_id;
  S.agent = { ...(S.agent || {}), ...data };
  if (data.wrap_up_s) S.wrapUpS = Number(data.wrap_up_s);
  if (data.state !== "on_call") { S.held = false; S.consult = null; }
  // the retained state names a call, but the pop for it was missed (a reconnect): fetch it
  if (data.call_id && (!S.pop || S.pop.call_id !== data.call_id) && data.call_id !== prevCall
      && ["reserved", "on_call", "wrap_up"].includes(data.state)) {
    fetchPop(data.call_id);
  }
  renderState();
}

// ------------------------------------------------------------------------------- screen-pop

async function fetchPop(callId) {
  try {
    const pop = await get(`/api/calls/${encodeURIComponent(callId)}/pop`);
    if (!S.pop || S.pop.call_id !== callId) showPop(pop);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) toast(errorText(e), "error");
  }
}

async function refetchPop(callId) {
  try {
    const pop = await get(`/api/calls/${encodeURIComponent(callId)}/pop`);
    // keep what the push added (seat, skill, attempt); the accounts and outages are new
    if (S.pop && S.pop.call_id === callId) showPop({ ...S.pop, ...pop, ivr: pop.ivr || S.pop.ivr });
  } catch { /* the call is gone: the pop on screen stays as it was */ }
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v, attrs]) =>
    [h("dt", {}, t(k)), h("dd", attrs || {}, v ?? t("common.none"))]));
}

function areaName(a) {
  if (!a.area) return null;
  return typeof a.area === "string" ? a.area : a.area.name || a.area.code;
}

function feederName(a) {
  if (!a.feeder) return null;
  return typeof a.feeder === "string" ? a.feeder : a.feeder.name || a.feeder.code;
}

function arrearsOf(a) {
  // the API's pop has {amount_due, due_date, overdue}; docs/mqtt.md shows a plain amount
  if (a.arrears && typeof a.arrears === "object") return a.arrears;
  return { amount_due: a.arrears ?? null, due_date: null, overdue: false };
}

function outageView(o) {
  // the notice as the caller heard it: its category (spoken), the text for agents (never
  // spoken), when power is expected back, where (台区 named) and the repair order covering it
  const category = o.category
    ? (getLang() === "en" ? o.category_en : o.category_zh) || o.category
    : o.kind === "planned" ? t("pop.outage_planned") : t("pop.outage_fault");
  const where = [...(o.areas || []), ...(o.transformer_areas || []).map((n) => `${t("out.ta")} ${n}`)];
  return h("div", { class: "outage", "data-testid": "pop-outage", "data-outage": o.outage_id ?? "",
    "data-category": o.category || o.kind || "" },
    h("strong", { "data-testid": "pop-outage-category" }, category), " · ", t("pop.restore_at"), " ",
    fmtTime(o.expected_restore_at),
    where.length ? h("span", { class: "muted" }, ` · ${where.join("，")}`) : null,
    o.master_order ? h("span", { class: "tag" }, `${t("pop.master_order")} ${o.master_order}`) : null,
    o.agent_text || o.cause ? h("div", { class: "muted", "data-testid": "pop-outage-text" },
      `${t("pop.agent_text")}: ${o.agent_text || o.cause}`) : null,
    o.notice ? h("div", { class: "muted" }, o.notice) : null,
    h("div", { class: "small" }, t("pop.no_repeat")));
}

/** A fault report linked into a known outage: say so, with its master order (主单). */
function outageLink(o) {
  if (!o.outage_id && !o.master_number) return null;
  return h("span", { class: "tag overdue", "data-testid": "pop-wo-outage-link" },
    t("pop.linked_outage"), o.outage_id ? ` #${o.outage_id}` : "",
    o.master_number ? ` · ${t("pop.master_order")} ${o.master_number}` : "");
}

function accountView(a) {
  const arr = arrearsOf(a);
  const owes = arr.amount_due && Number(arr.amount_due) > 0;
  const tags = [
    a.important ? h("span", { class: "tag important", "data-testid": "pop-important" },
      t("pop.important"), a.important_kind ? ` · ${a.important_kind}` : "") : null,
    ...(a.matched_by || []).map((m) => h("span", { class: "tag" }, t(`pop.matched_${m}`))),
  ];
  const bills = a.bills || [];
  return h("div", { class: "account", "data-testid": "pop-account", "data-account": a.account_no },
    h("div", {}, h("strong", { "data-testid": "pop-account-no" }, a.account_no), " ",
      a.customer_name || "", " ", tags),
    kv([
      ["pop.service_address", a.service_address, { "data-testid": "pop-address" }],
      ["pop.area", areaName(a)],
      ["pop.transformer_area", a.transformer_area],
      ["pop.feeder", feederName(a)],
      ["pop.arrears", owes ? h("span", { class: "arrears" }, yuan(arr.amount_due),
        arr.overdue ? h("span", { class: "tag overdue" }, t("pop.overdue")) : null)
        : t("pop.no_arrears"), { "data-testid": "pop-arrears", "data-amount": arr.amount_due ?? "" }],
      ["pop.due_date", arr.due_date],
      ["pop.last_payment", a.last_payment
        ? `${yuan(a.last_payment.amount)} · ${fmtTime(a.last_payment.paid_at)}` : null],
    ]),
    bills.length ? h("table", { "data-testid": "pop-bills" },
      h("thead", {}, h("tr", {}, ["pop.period", "pop.usage", "pop.amount", "pop.paid"]
        .map((k) => h("th", {}, t(k))))),
      h("tbody", {}, bills.map((b) => h("tr", { "data-testid": "pop-bill" },
        h("td", {}, b.period), h("td", {}, b.usage_kwh ?? ""), h("td", {}, b.amount),
        h("td", {}, b.paid ? t("pop.paid") : t("pop.unpaid")))))) : null,
    (a.outages || []).map(outageView));
}

function ivrPath(pop) {
  const steps = (pop.ivr && pop.ivr.path) || pop.ivr_path || [];
  if (!steps.length) return h("p", { class: "muted" }, t("common.none"));
  // what the caller did and what the IVR decided; the start, variable sets and read-outs are
  // left out (the IVR's record keeps them)
  const shown = steps.filter((s) => s.node && !("set" in s) && !("said" in s));
  return h("ol", { class: "ivr-path", "data-testid": "pop-ivr-path" }, shown.map((s) => {
    const label = s.label || tOr("ivrnode", s.node);
    let detail = null;
    if (s.input !== undefined && s.input !== null) {
      detail = s.timeout && !s.input
        ? h("span", { class: "key muted" }, t("pop.ivr_timeout"))
        : h("span", { class: "key", "data-testid": "pop-ivr-input" }, s.input);
    } else if (s.transfer) {
      detail = h("span", { class: "key" }, "→ ", tOr("skill", s.transfer));
    } else if (s.workorder) {
      detail = h("span", { class: "key" }, s.workorder);
    } else if (s.error) {
      detail = h("span", { class: "key tag overdue" }, t("pop.ivr_error"));
    }
    return h("li", { "data-testid": "pop-ivr-step", "data-node": s.node }, label, detail);
  }));
}

/** The order panel as a new call finds it: no form open, no previous call's "工单已受理". */
function resetOrderPanel() {
  $("wo-form").classList.add("hidden");
  $("wo-error").textContent = "";
  const box = $("wo-created");
  box.classList.add("hidden");
  delete box.dataset.number;
  clear(box);
}

function closePop() {
  loadMyCalls();  // the call is over: today's list has it, with its talk time
  S.pop.closed = true;
  $("pop").dataset.closed = "1";
  resetOrderPanel();
  showPop(S.pop);  // the same call: drawn again as a closed card
}

function showPop(pop) {
  const box = $("pop");
  const same = S.pop && S.pop.call_id === pop.call_id && box.dataset.shownAt;
  if (!same) {
    resetOrderPanel();  // the next ring starts a clean card
    delete box.dataset.closed;
  }
  if (same && S.pop.closed) pop.closed = true;
  S.pop = pop;
  const body = $("pop-body");
  const shownAt = same ? Number(box.dataset.shownAt) : Date.now();
  box.dataset.callId = pop.call_id;
  box.dataset.shownAt = String(shownAt);
  const accounts = pop.accounts || [];
  const orders = pop.work_orders || [];
  clear(body,
    h("div", { class: "pop-head" },
      h("span", { class: "caller", "data-testid": "pop-caller" }, pop.caller_number),
      // a number on the VIP list (issue 15 §3), with the supervisor's reason
      pop.vip ? h("span", { class: "tag vip", "data-testid": "pop-vip", title: pop.vip.reason || "" },
        t("pop.vip"), pop.vip.reason ? ` · ${pop.vip.reason}` : "") : null,
      pop.closed ? h("span", { class: "tag pop-closed", "data-testid": "pop-closed" },
        t("pop.closed")) : null,
      // the last caller's card: call them back from this seat (拨打客户, issue 14 §5)
      pop.closed && pop.caller_number ? h("button", { type: "button", class: "secondary",
        "data-testid": "pop-call-back", onclick: (ev) => callCustomer(
          `/api/calls/${encodeURIComponent(pop.call_id)}/call-back`, ev.currentTarget) },
      t("c2c.call")) : null,
      pop.skill ? h("span", {}, t("pop.skill"), ": ", tOr("skill", pop.skill)) : null,
      pop.ivr && pop.ivr.language ? h("span", { "data-testid": "pop-language" }, t("pop.language"), ": ",
        tOr("langname", pop.ivr.language)) : null,
      h("span", { class: "muted" }, fmtTime(pop.at || pop.generated_at))),
    pop.entered_account && !pop.entered_account.found
      ? h("p", { class: "tag overdue" }, t("pop.entered_unknown"), " ", pop.entered_account.account_no)
      : null,
    h("h3", {}, t("pop.accounts")),
    accounts.length ? accounts.map(accountView)
      : h("p", { class: "muted", "data-testid": "pop-no-accounts" }, t("pop.no_accounts")),
    pop.accounts_truncated ? h("p", { class: "muted" }, t("pop.more_accounts")) : null,
    (pop.outages || []).length ? [h("h3", {}, t("pop.outages")), pop.outages.map(outageView)] : null,
    h("h3", {}, t("pop.work_orders")),
    orders.length ? h("table", { "data-testid": "pop-work-orders" },
      h("tbody", {}, orders.map((o) => h("tr", { "data-testid": "pop-work-order" },
        h("td", {}, o.number), h("td", {}, tOr("wotype", o.type)),
        h("td", {}, tOr("wostatus", o.status)), h("td", {}, o.description || "", outageLink(o)),
        h("td", {}, h("span", { class: "sla", "data-due": o.sla_due_at || "" })),
        // the caller asks after an open order: urge it from here (催办, issue 14 §6); the
        // supervisors are alerted and the count is on the order
        h("td", {}, CLOSED.has(o.status) || pop.closed ? null
          : h("button", { type: "button", class: "secondary", "data-testid": "pop-wo-urge",
            onclick: (ev) => urgeOrder(o.number, ev.target) }, t("pop.urge")))))))
      : h("p", { class: "muted" }, t("pop.no_work_orders")),
    h("h3", {}, t("pop.ivr_path")),
    ivrPath(pop));
  window.__hotlinePopShownAt = shownAt;
  callShown(pop.call_id);  // the wrap-up form codes this call; its caller's history beside
  renderState();
}

async function urgeOrder(number, button) {
  button.disabled = true;
  try {
    const doc = await post(`/api/workorders/${encodeURIComponent(number)}/urge`,
      { note: t("pop.urge_note") });
    button.textContent = `${t("pop.urged")} ×${doc.urge_count ?? ""}`;
    button.dataset.urged = "1";
    toast(`${t("pop.urged")}: ${number}`, "ok");
  } catch (e) {
    button.disabled = false;
    toast(errorText(e), "error");
  }
}

// ------------------------------------------------------------------------------- call control

function callId() {
  return (S.agent && S.agent.call_id) || (S.pop && S.pop.call_id);
}

$("btn-hold").addEventListener("click", async () => {
  try {
    const res = await post(`/api/calls/${encodeURIComponent(callId())}/hold`, { on: !S.held });
    S.held = typeof res.held === "boolean" ? res.held : !S.held;
    renderState();
  } catch (e) { toast(errorText(e), "error"); }
});
// the key pad: each key to the far end at once (a party that is an IVR asks for them)
for (const key of "123456789*0#") {
  $("dtmf-keys").append(h("button", { type: "button", class: "secondary", "data-testid": "dtmf-key",
    "data-key": key, onclick: async (ev) => {
      ev.target.disabled = true;
      try { await post(`/api/calls/${encodeURIComponent(callId())}/dtmf`, { digits: key }); }
      catch (e) { toast(errorText(e), "error"); }
      finally { ev.target.disabled = !(S.agent && S.agent.state === "on_call"); }
    } }, key));
}

$("btn-hangup").addEventListener("click", async () => {
  try { await post(`/api/calls/${encodeURIComponent(callId())}/hangup`); }
  catch (e) { toast(errorText(e), "error"); }
});
// Consult (咨询转接, issue 14 §5): the caller on hold, this phone rings a ready agent picked
// below; then complete the transfer, go back to the caller, or make it a three-way call. The
// buttons show for the step the call is at; the call's consult is read each second meanwhile
// (the other seat answering, or ending it by itself, happens on the phones).
function renderConsult(k, onCall) {
  $("btn-consult").disabled = !onCall || !!k;
  $("btn-consult-outside").disabled = !onCall || !!k;
  const box = $("consult-box");
  box.classList.toggle("hidden", !k);
  box.dataset.state = k ? k.state : "";
  box.dataset.answered = k && k.answered ? "1" : "0";
  if (!k) return;
  const conf = k.state === "conference";
  $("consult-status").textContent = conf
    ? `${t("call.conference_of")}: ${(k.parties || []).join(", ")}`
    : `${k.answered ? t("call.consulting") : t("call.consult_ringing")}: ${consultee(k)}`;
  $("btn-consult-complete").classList.toggle("hidden", conf);
  $("btn-consult-cancel").classList.toggle("hidden", conf);
  $("btn-conference").classList.toggle("hidden", conf);
  $("btn-leave").classList.toggle("hidden", !conf);
  $("btn-consult-complete").disabled = !k.answered;
  $("btn-conference").disabled = !k.answered;
}

// who is consulted: an agent's id, or an outside number (and its directory name)
function consultee(k) {
  if (!k.outside) return k.agent_id;
  return k.outside.name ? `${k.outside.name} ${k.outside.number}` : k.outside.number;
}

let consultReading = false;
async function readConsult() {
  if (!S.consult || consultReading || !callId()) return;
  consultReading = true;
  try {
    const c = await get(`/api/calls/${encodeURIComponent(callId())}`);
    S.consult = c.consult || null;
    S.held = !!c.held;
    renderState();
  } catch { /* the call ended: the agent's state says so */ } finally { consultReading = false; }
}

async function consultStep(path, body) {
  try {
    const res = await post(`/api/calls/${encodeURIComponent(callId())}/${path}`, body);
    S.consult = res.consult || null;
    if (typeof res.held === "boolean") S.held = res.held;
    renderState();
  } catch (e) { toast(errorText(e), "error"); }
}

$("btn-consult").addEventListener("click", () => {
  // an agent picked, or else a skill: the ACD picks that skill's best ready agent
  const agent = $("xfer-agent").value;
  const skill = $("xfer-skill").value;
  if (!agent && !skill) return toast(`${t("call.transfer_skill")} / ${t("call.transfer_agent")}`, "error");
  consultStep("consult", agent ? { agent_id: agent } : { skill });
});
// an outside number: a typed one, else the directory's pick; the server checks it against
// [call_control] (the directory, or the national pattern) and audits it
$("btn-consult-outside").addEventListener("click", () => {
  const number = $("xfer-number").value.trim() || $("xfer-outside").value;
  if (!number) return toast(`${t("call.outside")} / ${t("call.outside_number")}`, "error");
  consultStep("consult", { number });
});
async function loadOutsideNumbers() {
  try {
    const doc = await get("/api/calls/outside-numbers");
    const sel = $("xfer-outside");
    clear(sel, h("option", { value: "" }, t("call.outside")),
      doc.numbers.map((n) => h("option", { value: n.number, "data-testid": "outside-target" },
        `${n.name} ${n.number}`)));
    $("xfer-number").classList.toggle("hidden", !doc.any_number);
  } catch (e) { toast(errorText(e), "error"); }
}
loadOutsideNumbers();
$("btn-consult-complete").addEventListener("click", () => consultStep("consult/complete"));
$("btn-consult-cancel").addEventListener("click", () => consultStep("consult/cancel"));
$("btn-conference").addEventListener("click", () => consultStep("conference"));
$("btn-leave").addEventListener("click", () => consultStep("leave"));

// the agents a call may go to: those ready now (never a typed id that turns out unknown or
// busy), read when a call starts and whenever the picker is opened
async function loadTransferTargets() {
  const sel = $("xfer-agent");
  try {
    const list = await get("/api/agents/transfer-targets");
    // what is picked now, not when the list was asked for: a pick made while it loaded stays
    const keep = sel.value;
    clear(sel, h("option", { value: "" }, list.length ? t("call.transfer_agent")
      : t("call.no_ready_agent")),
    list.map((a) => h("option", { value: a.agent_id, "data-testid": "transfer-target" },
      `${a.agent_id} ${a.name} (${Object.keys(a.skills).map((k) => tOr("skill", k)).join(", ")})`)));
    if (list.some((a) => a.agent_id === keep)) sel.value = keep;
  } catch (e) { toast(errorText(e), "error"); }
}
$("xfer-agent").addEventListener("focus", loadTransferTargets);
$("xfer-agent").addEventListener("mousedown", loadTransferTargets);

$("btn-transfer").addEventListener("click", async () => {
  const skill = $("xfer-skill").value;
  const agent = $("xfer-agent").value;
  if (!skill && !agent) return toast(`${t("call.transfer_skill")} / ${t("call.transfer_agent")}`, "error");
  try {
    await post(`/api/calls/${encodeURIComponent(callId())}/transfer`,
      agent ? { agent_id: agent } : { skill });
  } catch (e) { toast(errorText(e), "error"); }
});

// ------------------------------------------------------------------------------- work orders

function prefill() {
  const pop = S.pop || {};
  const acc = (pop.accounts || [])[0];
  const path = ((pop.ivr && pop.ivr.path) || pop.ivr_path || []).map((s) => s.node || "");
  const repair = pop.skill === "repair" || path.some((n) => n.startsWith("fault"));
  const type = repair ? "fault_repair" : "consultation";
  const form = $("wo-form");
  form.type.value = type;
  form.caller_number.value = pop.caller_number || "";
  form.account_number.value = acc ? acc.account_no : "";
  form.department.value = repair ? "repair" : "marketing";
  const where = acc ? `${acc.service_address || ""}（${t("pop.account_no")} ${acc.account_no}）` : "";
  form.description.value = `${repair ? t("wo.prefill_repair") : t("wo.prefill_general")}${where}`;
}

$("btn-wo").addEventListener("click", () => {
  prefill();
  $("wo-error").textContent = "";
  $("wo-form").classList.remove("hidden");
  $("wo-desc").focus();
});
$("wo-cancel").addEventListener("click", () => $("wo-form").classList.add("hidden"));
$("wo-type").addEventListener("change", (ev) => {
  $("wo-dept").value = ["fault_repair", "outage_query"].includes(ev.target.value) ? "repair" : "marketing";
});
$("wo-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const body = { type: f.type.value, description: f.description.value.trim(),
                 department: f.department.value };
  // digits only (the server refuses anything else); a withheld caller ("anonymous") is left
  // out and the server takes the number from the call record
  const caller = f.caller_number.value.trim();
  if (/^\+?\d{1,20}$/.test(caller)) body.caller_number = caller;
  if (f.account_number.value.trim()) body.account_number = f.account_number.value.trim();
  const cid = callId();
  if (cid) body.call_id = cid;
  const submit = f.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const order = await post("/api/workorders", body);
    f.classList.add("hidden");
    const box = $("wo-created");
    box.classList.remove("hidden");
    box.dataset.number = order.number;
    clear(box, h("p", {}, t("wo.created"), " ", h("strong", { "data-testid": "wo-created-number" },
      order.number)));
    toast(`${t("wo.created")}: ${order.number}`, "ok");
    loadOrders();
  } catch (e) {
    $("wo-error").textContent = errorText(e);
  } finally {
    submit.disabled = false;
  }
});

// 拨打客户 (click-to-call, issue 14 §5): this seat rings first, then the customer; the call
// then shows as the current call (its pop, hang-up) like any other
async function callCustomer(path, button) {
  button.disabled = true;
  try {
    const doc = await post(path);
    button.dataset.callId = doc.call_id;
    S.placed = doc.call_id;
    renderState();
    toast(`${t("c2c.dialling")} ${doc.number || ""}`, "info");
  } catch (e) {
    toast(errorText(e), "error");
  } finally {
    button.disabled = false;
  }
}

function orderCallButton(o) {
  return h("button", { type: "button", class: "secondary", "data-testid": "wo-call-customer",
    onclick: (ev) => callCustomer(`/api/workorders/${encodeURIComponent(o.number)}/call`,
      ev.currentTarget) }, t("c2c.call"));
}

function renderMine() {
  const tbody = $("mine");
  if (!S.orders.length) {
    clear(tbody, h("tr", {}, h("td", { colspan: 5, class: "muted" }, t("wo.none"))));
    return;
  }
  clear(tbody, S.orders.map((o) => orderRow(o, [h("td", {}, orderCallButton(o))])));
  tickSla(tbody);
}

// the agent's orders waiting for their return visit (回访): one click dials the automated
// visit through the outbound engine (as in the console), or the agent calls the customer
function renderReturnVisits() {
  const list = S.returnVisits || [];
  clear($("my-rv"), list.length ? list.map((o) => h("tr", {
    "data-testid": "rv-row", "data-number": o.number },
  h("td", {}, o.number), h("td", {}, tOr("wotype", o.type)), h("td", {}, fmtTime(o.resolved_at)),
  h("td", {}, rvButton(o.number),
  " ", orderCallButton(o)))) : h("tr", {}, h("td", { colspan: 4, class: "muted" }, t("wo.none"))));
}

// the visits this page asked for (from the click on): the list is redrawn on every order
// change and on every reconnect, so the buttons are drawn from this set, never changed in
// place (a redraw between the click and the server's answer would put "call now" back on a
// visit being dialled: a clean-clone run caught it)
const rvDialling = new Set();

function rvButton(number) {
  const dialling = rvDialling.has(number);
  return h("button", { type: "button", class: "secondary", "data-testid": "rv-call",
    disabled: dialling, "data-state": dialling ? "dialling" : null,
    onclick: () => callReturnVisit(number) },
  t(dialling ? "rv.dialling" : "rv.call_now"));
}

async function callReturnVisit(number) {
  if (rvDialling.has(number)) return;
  rvDialling.add(number);
  renderReturnVisits();
  try {
    await post(`/api/workorders/${encodeURIComponent(number)}/return-visit-call`);
    toast(`${t("rv.dialling")} ${number}`, "info");
  } catch (e) {
    rvDialling.delete(number);
    renderReturnVisits();
    toast(errorText(e), "error");
  }
}

async function loadOrders() {
  try {
    const res = await get("/api/workorders?limit=20");
    const items = Array.isArray(res) ? res : res.items || res.work_orders || [];
    S.orders = items.filter((o) => !CLOSED.has(o.status));
    renderMine();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 403)) toast(errorText(e), "error");
  }
  try {
    S.returnVisits = await get("/api/workorders/return-visits?limit=20");
    renderReturnVisits();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 403)) toast(errorText(e), "error");
  }
}

// ------------------------------------------------------------------------------- queues, push

const queueStats = {};
function renderQueues() {
  const qs = Object.values(queueStats);
  const waiting = qs.reduce((n, q) => n + (q.waiting || 0), 0);
  $("queues").textContent = `${t("sup.waiting")}: ${waiting}`;
  $("queues").dataset.waiting = String(waiting);
}

async function refresh() {
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  try {
    const a = await get(`/api/agents/${encodeURIComponent(S.me.user_id)}`);
    if (a.wrap_up_s) S.wrapUpS = Number(a.wrap_up_s);
    onAgentState(a);
  } catch (e) { toast(errorText(e), "error"); }
  try {
    const qs = await get("/api/queues");
    for (const q of qs || []) queueStats[q.skill] = q;
    renderQueues();
  } catch { /* the queue summary is a nicety */ }
  loadOrders();
}

async function start() {
  try {
    S.me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  if (S.me.wrap_up_s) S.wrapUpS = Number(S.me.wrap_up_s);
  $("who").textContent = `${S.me.name || ""} ${S.me.user_id}${S.me.seat ? ` · ${S.me.seat}` : ""}`;
  $("who").dataset.userId = S.me.user_id;
  renderState();
  // REST first: the page works before (and without) the push; every (re)connect re-fetches
  refresh();
  connectPush({
    onOpen: refresh,
    onStatus: (up) => {
      const c = $("conn");
      c.classList.toggle("off", !up);
      c.dataset.online = up ? "1" : "0";
      // data-i18n: a language switch translates it again (applyI18n)
      c.dataset.i18n = up ? "conn.online" : "conn.offline";
      c.textContent = t(c.dataset.i18n);
    },
    onMessage: (type, data) => {
      if (type === "agent_state") onAgentState(data);
      else if (type === "pop") showPop(data);
      // a notice changed (the console, the CLI, incident detection): the caller's outages on
      // screen are re-read with the pop
      else if (type === "outages" && S.pop && S.pop.call_id) refetchPop(S.pop.call_id);
      else if (type === "queue_stats" && data.skill) { queueStats[data.skill] = data; renderQueues(); }
    },
  });
  everySecond(tick);
  initCallWork();
}

$("btn-ready").addEventListener("click", () => {
  // ready for calls: a click is the moment a browser lets the page ask to notify
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => { /* refused: the title still flashes */ });
  }
  setState("ready");
});
$("btn-not-ready").addEventListener("click", () => setState("not_ready", $("reason").value));
// The ACD starts wrap-up by itself when a call ends; the agent may ask for it (or for more of
// it: the wrap-up time starts again), and is ready by itself when it is over.
$("btn-wrap-up").addEventListener("click", () => setState("wrap_up"));
$("logout").addEventListener("click", async () => {
  try { await post(`/api/agents/${encodeURIComponent(S.me.user_id)}/logout`); } catch (e) {
    // the ACD keeps an agent on a call (or being rung) logged in: say so and stay, rather
    // than leave the call with nobody's desktop on it (issue 14 §6: it was swallowed)
    const busy = S.agent && ["on_call", "reserved"].includes(S.agent.state);
    if (busy && e instanceof ApiError && e.status === 409) {
      toast(t("err.logout_on_call"), "error");
      return;
    }
    /* otherwise: the session is over already, or the ACD is away; leave all the same */
  }
  try { await post("/api/auth/logout"); } catch { /* gone */ }
  toLogin("");
});
document.addEventListener("langchange", () => {
  renderState();
  if (S.pop) showPop(S.pop);
  renderMine();
  renderReturnVisits();
  renderQueues();
});

start();
