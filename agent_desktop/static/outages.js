// The supervisors' outage page: publish, edit, confirm and close outage notices (停电通知) with
// their scope (areas, feeders, 台区), cause, times and text for agents; the storm switch with who
// and when. Times are entered and shown in the center's local time (Asia/Shanghai), whatever the
// browser's zone: the form sends them without a zone and the server reads them so.
import { ApiError, api, clear, connectPush, errorText, fmtTime, get, h, parseIso, post, soon,
  toLogin, toast } from "./api.js";
import { applyI18n, bindLangToggle, getLang, t, tOr } from "./i18n.js";
import { loadStorm, showStorm, stormState } from "./storm.js";

const $ = (id) => document.getElementById(id);
const TZ = "Asia/Shanghai";
const STATES = ["suspected", "active", "upcoming", "closed"];

const S = {
  me: null,
  places: { areas: [], feeders: [], transformer_areas: [], causes: [] },
  list: { active: [], suspected: [], upcoming: [], closed: [] },
  editing: null,   // the notice being edited, or null: publishing a new one
  calls: null,     // the notice calls shown: { id, items }
  denied: false,
};

bindLangToggle($("lang"));
applyI18n(document);

// ------------------------------------------------------------------------------- times

/** An ISO time as a datetime-local value in the center's zone ("2026-11-27T09:00"). */
export function centerLocal(iso) {
  const ms = iso ? parseIso(iso) : Date.now();
  if (Number.isNaN(ms)) return "";
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23" }).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

// ------------------------------------------------------------------------------- names

function causeLabel(value) {
  const c = S.places.causes.find((x) => x.value === value);
  if (c) return getLang() === "en" ? c.en : c.zh;
  return tOr("cause", value);
}

function scheduled(value) {
  const c = S.places.causes.find((x) => x.value === value);
  return c ? c.scheduled : ["planned", "temporary", "load_limiting"].includes(value);
}

function areaName(id, n) {
  const a = S.places.areas.find((x) => x.id === id);
  return (n && n.area_names && n.area_names[String(id)]) || (a ? a.name : String(id));
}

function feederName(id) {
  const f = S.places.feeders.find((x) => x.id === id);
  return f ? `${f.code} ${f.name}` : String(id);
}

function scopeText(n) {
  return [
    ...n.areas.map((a) => `${t("out.area")} ${areaName(a, n)}`),
    ...n.feeders.map((f) => `${t("out.feeder")} ${feederName(f)}`),
    ...n.transformer_areas.map(([a, name]) => `${t("out.ta")} ${areaName(a, n)}·${name}`),
  ].join("，");
}

// ------------------------------------------------------------------------------- the form

function fillPickers() {
  const cause = $("n-cause").value;
  clear($("n-cause"), S.places.causes.map((c) => h("option", { value: c.value }, causeLabel(c.value))));
  if (cause) $("n-cause").value = cause;
  const keep = (sel) => new Set([...sel.selectedOptions].map((o) => o.value));
  const areas = keep($("n-areas"));
  const feeders = keep($("n-feeders"));
  const tas = keep($("n-tas"));
  clear($("n-areas"), S.places.areas.map((a) => h("option", { value: a.id, selected: areas.has(String(a.id)) },
    `${a.code} ${a.name}`)));
  clear($("n-feeders"), S.places.feeders.map((f) => h("option", { value: f.id,
    selected: feeders.has(String(f.id)) }, `${f.code} ${f.name}`)));
  clear($("n-tas"), S.places.transformer_areas.map((ta) => {
    const value = `${ta.area_id}:${ta.name}`;
    return h("option", { value, selected: tas.has(value) }, `${areaName(ta.area_id)} · ${ta.name}`);
  }));
  onCause();
}

function onCause() {
  const need = scheduled($("n-cause").value);
  $("n-schedule-box").classList.toggle("dim", !need);
  $("n-schedule-hint").classList.toggle("hidden", !need);
}
$("n-cause").addEventListener("change", onCause);

function select(sel, values) {
  const want = new Set(values.map(String));
  for (const o of sel.options) o.selected = want.has(o.value);
}

function resetForm() {
  S.editing = null;
  const f = $("notice-form");
  f.reset();
  $("n-start").value = centerLocal(null);
  $("n-error").textContent = "";
  $("n-cancel").classList.add("hidden");
  $("n-submit").dataset.i18n = "out.submit";
  $("form-h").dataset.i18n = "out.publish";
  applyI18n($("notice-panel"));
  onCause();
}

function edit(n) {
  S.editing = n;
  $("n-cause").value = n.cause;
  select($("n-areas"), n.areas);
  select($("n-feeders"), n.feeders);
  select($("n-tas"), n.transformer_areas.map(([a, name]) => `${a}:${name}`));
  $("n-start").value = centerLocal(n.start_at);
  $("n-restore").value = n.expected_restore_at ? centerLocal(n.expected_restore_at) : "";
  $("n-schedule").value = n.schedule_end_at ? centerLocal(n.schedule_end_at) : "";
  $("n-text").value = n.agent_text || "";
  $("n-master").value = n.master_order || "";
  $("n-error").textContent = "";
  $("n-cancel").classList.remove("hidden");
  $("n-submit").dataset.i18n = "out.save";
  delete $("form-h").dataset.i18n;
  $("form-h").textContent = t("out.edit", { id: n.id });
  applyI18n($("notice-form"));
  onCause();
  $("notice-panel").scrollIntoView({ block: "start" });
}
$("n-cancel").addEventListener("click", resetForm);

function body() {
  const f = $("notice-form");
  const chosen = (sel) => [...sel.selectedOptions].map((o) => o.value);
  const doc = {
    cause: f.cause.value,
    areas: chosen($("n-areas")).map(Number),
    feeders: chosen($("n-feeders")).map(Number),
    transformer_areas: chosen($("n-tas")).map((v) => {
      const i = v.indexOf(":");
      return { area_id: Number(v.slice(0, i)), name: v.slice(i + 1) };
    }),
    agent_text: f.agent_text.value.trim(),
  };
  // datetime-local values, without a zone: the center's local time on the server
  for (const name of ["start_at", "expected_restore_at", "schedule_end_at"]) {
    if (f[name].value) doc[name] = f[name].value.length === 16 ? `${f[name].value}:00` : f[name].value;
  }
  if (f.master_order.value.trim()) doc.master_order = f.master_order.value.trim();
  return doc;
}

$("notice-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("n-error").textContent = "";
  const button = $("n-submit");
  button.disabled = true;
  try {
    if (S.editing) {
      await api("PUT", `/api/outages/${S.editing.id}`, body());
      toast(t("out.saved"), "ok");
    } else {
      const n = await post("/api/outages", body());
      toast(`${t("out.published")} #${n.id}`, "ok");
    }
    resetForm();
    await loadList();
  } catch (e) {
    // the server's reason (no scope, unknown feeder, restoration before the start, ...)
    $("n-error").textContent = e instanceof ApiError && (e.status === 400 || e.status === 422)
      ? `${t("err.generic")}: ${e.detail}` : errorText(e);
  } finally {
    button.disabled = false;
  }
});

// ------------------------------------------------------------------------------- the lists

async function act(n, what, okKey) {
  try {
    await post(`/api/outages/${n.id}/${what}`);
    toast(t(okKey), "ok");
    await loadList();
  } catch (e) { toast(errorText(e), "error"); }
}

function row(n) {
  const open = n.state !== "closed";
  return h("tr", { "data-testid": "notice-row", "data-id": n.id, "data-state": n.state,
    "data-cause": n.cause },
    h("td", {}, `#${n.id}`),
    h("td", {}, h("span", { class: `cause-tag cause-${n.cause}` }, causeLabel(n.cause))),
    h("td", { "data-testid": "notice-scope" }, scopeText(n)),
    h("td", {}, fmtTime(n.start_at), " → ",
      n.expected_restore_at || n.schedule_end_at ? fmtTime(n.expected_restore_at || n.schedule_end_at)
        : t("common.none"),
      n.restored_at ? h("div", { class: "muted" }, "✓ ", fmtTime(n.restored_at)) : null),
    h("td", { "data-testid": "notice-text" }, n.agent_text || "",
      n.master_order ? h("div", { class: "muted" }, `${t("board.master")} ${n.master_order}`) : null),
    h("td", { class: "muted" }, n.created_by || "", n.confirmed_by ? ` / ${n.confirmed_by}` : ""),
    h("td", {}, open ? h("div", { class: "rowactions" },
      n.state === "suspected" ? h("button", { type: "button", "data-testid": "notice-confirm",
        onclick: () => act(n, "confirm", "out.confirmed") }, t("out.confirm")) : null,
      h("button", { type: "button", class: "secondary", "data-testid": "notice-edit",
        onclick: () => edit(n) }, t("out.edit_btn")),
      scheduled(n.cause) ? h("button", { type: "button", class: "secondary",
        "data-testid": "notice-calls-btn", onclick: () => showCalls(n.id) }, t("ncall.btn")) : null,
      h("button", { type: "button", class: "danger", "data-testid": "notice-close",
        onclick: () => act(n, "close", "out.closed_ok") }, t("out.close"))) : null));
}

function renderList() {
  clear($("lists"), STATES.map((state) => {
    const items = S.list[state] || [];
    return h("div", { class: `notice-group group-${state}`, "data-testid": `notices-${state}` },
      h("h3", {}, t(`out.${state}`), ` (${items.length})`),
      items.length ? h("table", {}, h("thead", {}, h("tr", {},
        ["#", "out.cause", "out.scope", "out.times", "out.agent_text", "out.by", "out.actions"]
          .map((k) => h("th", {}, k === "#" ? k : t(k))))),
      h("tbody", {}, items.map(row)))
        : h("p", { class: "muted" }, t("out.none")));
  }));
  $("main").dataset.version = String(S.version ?? "");
}

async function loadList() {
  const doc = await get("/api/outages?closed=20");
  S.version = doc.version;
  for (const state of STATES) S.list[state] = doc[state] || [];
  renderList();
}

// ------------------------------------------------------------------------------- notice calls

// A planned outage's calls to its important customers (issue 14 §4): each customer's number,
// lead (7 or 1 days), state and how the call went (heard to the end or hung up, repeats).
function callResult(c) {
  if (c.heard === null || c.heard === undefined) {
    return c.last_outcome && c.last_outcome !== "answered" ? tOr("rvout", c.last_outcome) : "";
  }
  const said = c.heard ? t("ncall.heard") : t("ncall.hung_up");
  return c.repeats ? `${said} · ${t("ncall.repeats", { n: c.repeats })}` : said;
}

function callRow(c) {
  return h("tr", { "data-testid": "notice-call-row", "data-account": c.account_no || "",
    "data-lead": c.lead_days, "data-state": c.state,
    "data-heard": c.heard === null || c.heard === undefined ? "" : c.heard ? "1" : "0",
    "data-repeats": c.repeats ?? "" },
    h("td", {}, c.account_no || ""),
    h("td", {}, c.customer_name || "",
      c.important_kind ? h("div", { class: "muted" }, tOr("imp", c.important_kind)) : null),
    h("td", {}, c.number),
    h("td", {}, t("ncall.lead_days", { n: c.lead_days })),
    h("td", {}, c.not_before ? fmtTime(c.not_before) : ""),
    h("td", { "data-testid": "notice-call-state" }, tOr("ncall.state", c.state)),
    h("td", {}, String(c.attempts)),
    h("td", { "data-testid": "notice-call-result" }, callResult(c)));
}

function renderCalls() {
  const panel = $("ncall-panel");
  if (!S.calls) { panel.classList.add("hidden"); return; }
  panel.classList.remove("hidden");
  panel.dataset.outage = String(S.calls.id);
  $("ncall-h").textContent = t("ncall.title", { id: S.calls.id });
  const items = S.calls.items;
  clear($("ncall-list"), items.length ? h("table", {}, h("thead", {}, h("tr", {},
    ["ncall.account", "ncall.customer", "ncall.number", "ncall.lead", "ncall.due", "ncall.state",
      "ncall.attempts", "ncall.result"].map((k) => h("th", {}, t(k))))),
  h("tbody", {}, items.map(callRow)))
    : h("p", { class: "muted", "data-testid": "notice-calls-none" }, t("ncall.none")));
}

async function showCalls(id) {
  try {
    S.calls = { id, items: await get(`/api/outages/${id}/notice-calls`) };
    renderCalls();
    $("ncall-panel").scrollIntoView({ block: "start" });
  } catch (e) { toast(errorText(e), "error"); }
}
$("ncall-refresh").addEventListener("click", () => { if (S.calls) showCalls(S.calls.id); });

// ------------------------------------------------------------------------------- storm

function renderStorm() {
  const s = stormState();
  const el = $("storm-state");
  const on = Boolean(s && s.on);
  el.className = `state-badge ${on ? "storm-on" : "state-ready"}`;
  el.dataset.on = on ? "1" : "0";
  el.textContent = on ? t("storm.state_on") : t("storm.state_off");
  $("storm-who").textContent = s && s.since
    ? `${on ? t("storm.since") : t("storm.off_since")} ${fmtTime(s.since)} · ${t("storm.by")} ${s.by || ""}`
      + (s.trigger ? ` (${tOr("storm.trigger", s.trigger)})` : "")
    : t("storm.never");
  $("storm-on").disabled = on;
  $("storm-off").disabled = !on;
}

async function loadStormHistory() {
  try {
    const lines = await get("/api/storm/history");
    clear($("storm-history"), lines.slice(0, 8).map((l) => h("li", { "data-testid": "storm-history-line" },
      `${fmtTime(l.at)} ${tOr("storm.action", l.action)} · ${l.actor}`
      + (l.detail && l.detail.detail ? ` · ${l.detail.detail}` : ""))));
  } catch { /* the history is a nicety */ }
}

async function switchStorm(on) {
  try {
    const s = await post("/api/storm", { on, detail: $("storm-detail").value.trim() });
    showStorm(s);
    $("storm-detail").value = "";
    toast(t(on ? "storm.switched_on" : "storm.switched_off"), "ok");
    loadStormHistory();
  } catch (e) { toast(errorText(e), "error"); }
}
$("storm-on").addEventListener("click", () => switchStorm(true));
$("storm-off").addEventListener("click", () => switchStorm(false));
document.addEventListener("stormchange", renderStorm);

// ------------------------------------------------------------------------------- start

function deny() {
  S.denied = true;
  $("main").classList.add("hidden");
  const d = $("denied");
  d.classList.remove("hidden");
  d.dataset.i18n = "err.forbidden";
  d.textContent = t("err.forbidden");
}

async function refresh() {
  try {
    await Promise.all([loadList(), loadStorm(), loadStormHistory()]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return toLogin("session");
    toast(errorText(e), "error");
  }
}


async function start() {
  try {
    S.me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  $("who").textContent = `${S.me.name || ""} ${S.me.user_id}`;
  try {
    S.places = await get("/api/outages/places");
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return deny();
    toast(errorText(e), "error");
  }
  fillPickers();
  resetForm();
  renderStorm();
  await refresh();
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
      if (type === "storm") { showStorm(data); soon("storm-history", loadStormHistory); }
      else if (type === "outages" && data.version !== S.version) soon("list", loadList);
      else if (type === "sla_alert" && data.kind === "outage") soon("list", loadList);
    },
  });
  document.body.dataset.ready = "1";
}

$("logout").addEventListener("click", async () => {
  try { await post("/api/auth/logout"); } catch { /* gone */ }
  toLogin("");
});
document.addEventListener("langchange", () => {
  if (S.denied) return deny();
  fillPickers();
  if (S.editing) $("form-h").textContent = t("out.edit", { id: S.editing.id });
  renderList();
  renderCalls();
  renderStorm();
});

start();
