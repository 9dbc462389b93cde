// The outage board (停电大屏): a picture of the storm day for the big screen. Per active outage a
// card with bars (customers affected, calls in the last 15 minutes, the share deflected by the
// notice) coloured by cause, and the master repair order's SLA clock ticking; the suspected
// outages waiting for a supervisor, each with its confirm button; the red storm banner; how
// many keyword alerts are open (handled on the supervisor console).
import { ApiError, clear, connectPush, errorText, everySecond, fmtTime, get, h, pct, post,
  slaClock, soon, toLogin, toast } from "./api.js";
import { applyI18n, bindLangToggle, getLang, t } from "./i18n.js";
import { isKeywordAlert, OpenAlerts, showCount } from "./keyword_alerts.js";
import { loadStorm, showStorm } from "./storm.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;
const S = { doc: null, denied: false, me: null };
const alerts = new OpenAlerts(() => showCount($("t-kw-alerts"), alerts.count));

bindLangToggle($("lang"));
applyI18n(document);

function label(row) {
  return getLang() === "en" ? row.cause_en : row.cause_zh;
}

function scope(row) {
  return [
    ...row.areas.map((a) => a.name || String(a.id)),
    ...(row.feeder_names || row.feeders.map(String)),
    ...row.transformer_areas.map((ta) => `${ta.area_name ? `${ta.area_name}·` : ""}${ta.name}`),
  ].join("，");
}

/** A labelled bar: `value` of `max`, its width a share of the card. */
function bar(testid, title, value, max, text, cls = "") {
  const fill = h("div", { class: `bar-fill ${cls}` });
  // a CSSOM write, not a style attribute: the page's CSP allows no inline style
  fill.style.width = `${max > 0 && value > 0 ? Math.max(2, Math.round((100 * value) / max)) : 0}%`;
  return h("div", { class: "bar-row", "data-testid": testid, "data-value": value },
    h("div", { class: "bar-label" }, title),
    h("div", { class: "bar" }, fill),
    h("div", { class: "bar-num" }, text ?? String(value)));
}

function deflectionClass(rate) {
  if (rate === null || rate === undefined) return "none";
  return rate >= 0.5 ? "good" : rate >= 0.2 ? "fair" : "poor";
}

function slaView(row) {
  const m = row.master;
  if (!m) return h("div", { class: "sla-box muted", "data-testid": "board-sla" }, t("board.no_master"));
  const c = m.clock;
  const due = c && !c.stopped_at ? c.due_at : null;
  return h("div", { class: "sla-box", "data-testid": "board-sla", "data-number": m.number },
    h("span", { class: "muted" }, `${t("board.master")} ${m.number} · ${t("board.sla")} `),
    due ? h("span", { class: "sla big-sla", "data-due": due, "data-testid": "board-sla-clock" })
      : h("span", { class: "muted" }, c ? t("board.sla_stopped") : t("common.none")));
}

function card(row, max, suspected) {
  const rate = row.deflection_rate;
  return h("article", { class: `outage-card cause-${row.cause}${suspected ? " suspected" : ""}`,
    "data-testid": suspected ? "board-suspected-card" : "board-card", "data-id": row.outage_id },
    h("header", {},
      h("span", { class: `cause-tag cause-${row.cause}` }, label(row)),
      h("span", { class: "card-id" }, `#${row.outage_id}`),
      h("span", { class: "card-scope", "data-testid": "board-scope" }, scope(row))),
    bar("board-customers", t("board.customers"), row.customers, max.customers, null, "customers"),
    bar("board-calls", t("board.calls"), row.calls_window, max.calls, null, "calls"),
    suspected ? null : bar("board-deflection", t("board.deflection"),
      Math.round(100 * (rate || 0)), 100,
      rate === null || rate === undefined ? t("common.none")
        : `${pct(rate)} (${row.deflected}/${row.heard})`, `deflect ${deflectionClass(rate)}`),
    h("div", { class: "card-foot" },
      h("span", {}, `${t("board.restore")} `,
        h("strong", {}, row.expected_restore_at ? fmtTime(row.expected_restore_at) : t("common.none"))),
      row.children ? h("span", {}, `${t("board.children")} ${row.children}`) : null),
    slaView(row),
    row.agent_text ? h("p", { class: "card-text" }, row.agent_text) : null,
    suspected ? h("button", { type: "button", class: "confirm", "data-testid": "board-confirm",
      onclick: () => confirmOutage(row.outage_id) }, t("out.confirm")) : null);
}

function render() {
  const d = S.doc;
  if (!d) return;
  const tot = d.totals;
  $("t-active").textContent = String(tot.active);
  $("t-customers").textContent = String(tot.customers);
  $("t-calls").textContent = String(tot.calls_window);
  $("t-deflection").textContent = pct(tot.deflection_rate);
  $("t-suspected").textContent = String(tot.suspected);
  const all = [...d.active, ...d.suspected];
  const max = { customers: Math.max(0, ...all.map((r) => r.customers)),
                calls: Math.max(0, ...all.map((r) => r.calls_window)) };
  clear($("active"), d.active.length ? d.active.map((r) => card(r, max, false))
    : h("p", { class: "muted empty", "data-testid": "board-none" }, t("board.none")));
  clear($("suspected"), d.suspected.length ? d.suspected.map((r) => card(r, max, true))
    : h("p", { class: "muted empty" }, t("board.no_suspected")));
  if (d.storm) showStorm(d.storm);
  tick();
  $("main").dataset.updated = String(Date.now());
  $("main").dataset.version = String(d.version);
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll(".sla[data-due]")) {
    const c = slaClock(el.dataset.due, now);
    el.textContent = c.text;
    el.className = `sla big-sla ${c.overdue ? "sla-bad" : c.left !== null && c.left < 900 ? "sla-warn" : "sla-ok"}`;
  }
  $("clock").textContent = new Date(now).toLocaleTimeString(getLang() === "en" ? "en-GB" : "zh-CN",
    { timeZone: "Asia/Shanghai" });
}

async function confirmOutage(id) {
  try {
    await post(`/api/outages/${id}/confirm`);
    toast(t("out.confirmed"), "ok");
    await load();
  } catch (e) { toast(errorText(e), "error"); }
}

function deny() {
  S.denied = true;
  $("main").classList.add("hidden");
  const d = $("denied");
  d.classList.remove("hidden");
  d.dataset.i18n = "err.forbidden";
  d.textContent = t("err.forbidden");
}

async function load() {
  if (S.denied) return;
  try {
    S.doc = await get("/api/outages/board");
    render();
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return deny();
    if (e instanceof ApiError && e.status === 401) return toLogin("session");
    toast(errorText(e), "error");
  }
}


async function loadAlerts() {
  try { await alerts.load(); } catch (e) { toast(errorText(e), "error"); }
}

async function start() {
  try {
    S.me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  await load();
  if (S.denied) return;
  await Promise.all([loadStorm(), loadAlerts()]);
  connectPush({
    onOpen: () => { load(); loadStorm(); loadAlerts(); },
    onStatus: (up) => {
      const c = $("conn");
      c.classList.toggle("off", !up);
      c.dataset.online = up ? "1" : "0";
      // data-i18n: a language switch translates it again (applyI18n)
      c.dataset.i18n = up ? "conn.online" : "conn.offline";
      c.textContent = t(c.dataset.i18n);
    },
    onMessage: (type, data) => {
      if (type === "storm") showStorm(data);
      else if (isKeywordAlert(type, data)) alerts.pushed(data);
      else if (type === "outages" && (!S.doc || data.version !== S.doc.version)) soon("board", load, 500);
      else if (type === "sla_alert" || type === "call_event") soon("board", load, 2000);
    },
  });
  everySecond(tick);
  // the calls and the deflection move with every call: a slow refresh under the push
  // (and the alerts handled on a console meanwhile leave the count)
  setInterval(() => { if (!document.hidden) { load(); loadAlerts(); } }, REFRESH_MS);
}

document.addEventListener("langchange", () => { if (S.denied) deny(); else render(); });

start();
