// REST calls (cookie session), the /ws push with reconnect, and small DOM and format helpers.
import { getLang, t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

/** JSON over HTTP. Throws ApiError with the server's {"detail": ...}. */
export async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, String(e));
  }
  let doc = null;
  const text = await res.text();
  if (text) {
    try { doc = JSON.parse(text); } catch { doc = { detail: text }; }
  }
  if (!res.ok) {
    let detail = doc && doc.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    throw new ApiError(res.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return doc;
}

export const get = (p) => api("GET", p);
export const post = (p, b = {}) => api("POST", p, b);
export const del = (p) => api("DELETE", p);

/** Back to the login page (the session is gone). */
export function toLogin(reason) {
  const q = reason ? `?reason=${encodeURIComponent(reason)}` : "";
  location.href = `index.html${q}`;
}

/**
 * The push channel. Reconnects with jittered backoff; onOpen runs on every (re)connect so the
 * page re-fetches its state over REST (pushes sent while away are not replayed).
 */
export function connectPush({ onMessage, onOpen, onStatus }) {
  let delay = 500;
  let ws = null;
  let stopped = false;
  const open = () => {
    if (stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/ws`);
    ws.addEventListener("open", () => {
      delay = 500;
      document.body.dataset.pushConnects = String(Number(document.body.dataset.pushConnects || 0) + 1);
      onStatus && onStatus(true);
      onOpen && onOpen();
    });
    ws.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && msg.type) onMessage(msg.type, msg.data || {});
    });
    ws.addEventListener("close", (ev) => {
      onStatus && onStatus(false);
      if (ev.code === 4401 || ev.code === 1008) return toLogin("session");
      const wait = delay * (0.5 + Math.random());
      delay = Math.min(delay * 2, 10000);
      setTimeout(open, wait);
    });
  };
  open();
  return { close() { stopped = true; ws && ws.close(); } };
}

// ------------------------------------------------------------------------------------ DOM

/** h("div", {class: "x", "data-testid": "y", onclick: fn}, child, "text", ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return el;
}

/** Show a short message in the page's toast area. */
export function toast(message, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const el = h("div", { class: `toast toast-${kind}`, "data-testid": `toast-${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), 6000);
}

// The server's errors are English sentences (its API and logs are read by engineers too). A
// Mandarin desktop shows the ones an agent or supervisor meets in Mandarin, the rest with a
// Mandarin sentence by status first and the server's words after it (issue 14 §6: they were
// shown in English alone). Each pattern names its i18n key; {1} is the first group.
const KNOWN_ERRORS = [
  [/^no agent (\S+) is logged in$/, "err.no_such_agent"],
  [/^agent (\S+) is not ready$/, "err.agent_not_ready"],
  [/^only the agent on this call/, "err.not_your_call"],
  [/is not connected to an agent$/, "err.not_connected"],
  [/is not live in the ACD$/, "err.call_gone"],
  [/^the ACD is busy|^the ACD did not answer in time/, "err.acd_busy"],
  [/^the ACD is not running|needs the PBX and the ACD|the PBX is not running/, "err.no_cti"],
  [/^the agent's phone is not on hold yet/, "err.hold_not_ready"],
  [/^the PBX refused or did not answer|^the PBX did not ring your phone/, "err.pbx"],
  [/while on_call|while reserved/, "err.on_call"],
  [/^return visits are not called here: no outbound trunk/, "err.no_trunk"],
  [/only a resolved order is visited$/, "err.not_resolved"],
  [/is not a telephone number/, "err.dnc_bad_number"],
  [/^(\d+) is on the do-not-call list already$/, "err.dnc_duplicate"],
];
const BY_STATUS = { 0: "err.network", 400: "err.bad_input", 404: "err.not_found",
  409: "err.conflict", 422: "err.bad_input", 429: "err.too_many" };

export function errorText(e) {
  if (e instanceof ApiError) {
    if (e.status === 403) return t("err.forbidden");
    if (e.status === 401) return t("err.session");
    const detail = String(e.detail || "");
    for (const [re, key] of KNOWN_ERRORS) {
      const m = detail.match(re);
      if (m) return t(key, { 1: m[1] || "" });
    }
    if (getLang() === "en") return `${t("err.generic")}: ${detail}`;
    const kind = t(BY_STATUS[e.status] || (e.status >= 500 ? "err.server" : "err.generic"));
    return detail ? `${kind}（${detail}）` : kind;
  }
  return `${t("err.generic")}: ${e}`;
}

// ------------------------------------------------------------------------------------ formats

/** 75 -> "01:15", 3725 -> "1:02:05" */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** Milliseconds of an ISO time; one without a zone is UTC (the server's times all are). */
export function parseIso(iso) {
  if (!iso) return NaN;
  // the ACD's MQTT state carries epoch seconds; the REST API ISO 8601
  if (typeof iso === "number") return iso < 1e11 ? iso * 1000 : iso;
  const s = String(iso);
  if (/^\d+(\.\d+)?$/.test(s)) return parseIso(Number(s));
  return Date.parse(/([zZ]|[+-]\d\d:?\d\d)$/.test(s) || !s.includes("T") ? s : `${s}Z`);
}

export function since(iso, now = Date.now()) {
  if (!iso) return 0;
  return (now - parseIso(iso)) / 1000;
}

const TZ = "Asia/Shanghai"; // the center's local time, whatever the browser's zone

export function fmtTime(iso) {
  if (!iso) return t("common.none");
  const d = new Date(parseIso(iso));
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(getLang() === "en" ? "en-GB" : "zh-CN",
    { timeZone: TZ, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

export function pct(x) {
  if (x === null || x === undefined || Number.isNaN(Number(x))) return t("common.none");
  return `${(Number(x) * 100).toFixed(1)}%`;
}

export function yuan(x) {
  if (x === null || x === undefined) return t("common.none");
  return `¥${x}`;
}

/** The SLA clock: time left to sla_due_at, or how long it is overdue. */
export function slaClock(dueIso, now = Date.now()) {
  if (!dueIso) return { text: t("common.none"), overdue: false, left: null };
  const left = (parseIso(dueIso) - now) / 1000;
  if (left < 0) return { text: `${t("wo.sla_overdue")} ${clock(-left)}`, overdue: true, left };
  return { text: clock(left), overdue: false, left };
}

/** One timer for every live clock on the page. */
export function everySecond(fn) {
  fn();
  return setInterval(fn, 1000);
}

const pending = new Map();
/** Run `fn` once, `ms` from now, however often this is called for `name` meanwhile (a burst
 * of pushes makes one reload). */
export function soon(name, fn, ms = 300) {
  if (pending.has(name)) return;
  pending.set(name, setTimeout(() => { pending.delete(name); fn(); }, ms));
}
