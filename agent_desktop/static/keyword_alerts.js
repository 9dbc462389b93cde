// Keyword alerts (a caller said 投诉, 媒体, 12345, ...): the open ones, loaded over REST on every
// (re)connect and merged with those pushed live (type "keyword_alert"); on the console a list
// with play, a prefilled complaint work order linked to the call, and dismiss; the wallboard and
// the outage board show how many are open.
import { ApiError, clear, errorText, fmtTime, get, h, parseIso, post, toast } from "./api.js";
import { t } from "./i18n.js";

const MAX_SHOWN = 50;

/** A pushed keyword alert: its own type, or as the /ws relay names whatever comes on the
 * supervisors' alerts topic (sla_alert), told apart by the payload's kind. */
export function isKeywordAlert(type, data) {
  return type === "keyword_alert"
    || (type === "sla_alert" && !!data && (data.kind === "keyword_alert" || data.type === "keyword_alert"));
}

/** One alert whichever way it came: the push says alert_id and at, REST id and raised_at. */
export function normalizeAlert(a) {
  const keywords = (a.keywords || []).map((k) => (typeof k === "string" ? { word: k, start: null } : k));
  return { ...a, id: a.id ?? a.alert_id, status: a.status || "open",
    raised_at: a.raised_at || a.at || null, keywords };
}

export async function fetchOpenAlerts() {
  const res = await get("/api/alerts/keywords?status=open");
  const items = Array.isArray(res) ? res : res.items || res.alerts || [];
  return items.map(normalizeAlert);
}

/**
 * The open alerts as a set kept right under both sources: a REST load replaces it, except for
 * alerts pushed after that load began (the push comes after the commit, the REST answer may
 * not have seen it) and alerts this page has closed itself.
 */
export class OpenAlerts {
  constructor(onChange) {
    this.items = new Map();
    this.closed = new Set();
    this.pushedAt = new Map(); // id -> when the push came
    this.onChange = onChange;
    this.denied = false;
  }

  get count() { return this.items.size; }

  list() {
    return [...this.items.values()].sort(
      (a, b) => (parseIso(b.raised_at) || 0) - (parseIso(a.raised_at) || 0));
  }

  async load() {
    if (this.denied) return;
    const began = Date.now();
    let items;
    try {
      items = await fetchOpenAlerts();
    } catch (e) {
      // a page the server refuses says so itself (its own 403 handling); nothing to list here
      if (e instanceof ApiError && e.status === 403) { this.denied = true; return; }
      // a server without alerts (404), or whose alerts are not running (409): none to list
      if (e instanceof ApiError && (e.status === 404 || e.status === 409)) return;
      throw e;
    }
    const fresh = new Map(items.filter((a) => a.status === "open" && !this.closed.has(a.id))
      .map((a) => [a.id, a]));
    for (const [id, at] of this.pushedAt) {
      if (at >= began && this.items.has(id) && !fresh.has(id)) fresh.set(id, this.items.get(id));
    }
    this.items = fresh;
    this.onChange();
  }

  /** A pushed alert; true when it is new here. */
  pushed(data) {
    const a = normalizeAlert(data);
    if (a.id === undefined || a.id === null || this.closed.has(a.id)) return false;
    if (a.status !== "open") {
      const had = this.items.delete(a.id);
      if (had) this.onChange();
      return false;
    }
    const isNew = !this.items.has(a.id);
    this.items.set(a.id, { ...(this.items.get(a.id) || {}), ...a });
    this.pushedAt.set(a.id, Date.now());
    this.onChange();
    return isNew;
  }

  close(id) {
    this.closed.add(id);
    this.items.delete(id);
    this.onChange();
  }
}

function keywordTags(a) {
  return [...new Set(a.keywords.map((k) => k.word))].map((w) =>
    h("span", { class: "tag kw-tag", "data-testid": "kw-alert-word" }, w));
}

/** The earliest keyword's time in the recording (where "play" starts). */
export function firstKeywordAt(a) {
  const starts = a.keywords.map((k) => Number(k.start)).filter((s) => Number.isFinite(s));
  return starts.length ? Math.min(...starts) : 0;
}

/**
 * The console's panel: the table of open alerts and the complaint form.
 * onPlay(recordingId, seconds, alert) plays the recording from the keyword.
 */
export function alertsPanel({ alerts, tbody, formBox, onPlay }) {
  let formFor = null; // the alert id whose complaint form is open
  let shown = null;   // what the box shows, to draw again in another language:
                      // {alert, prefill} (the form) or {alert, number} (the order made)

  function render() {
    const rows = alerts.list().slice(0, MAX_SHOWN);
    if (!rows.length) {
      clear(tbody, h("tr", {}, h("td", { colspan: 6, class: "muted", "data-testid": "kw-none" },
        t("kw.none"))));
      return;
    }
    clear(tbody, rows.map((a) => h("tr", {
      class: `kw-row${formFor === a.id ? " kw-active" : ""}`, "data-testid": "kw-alert",
      "data-id": a.id, "data-call": a.call_id || "", "data-recording": a.recording_id ?? "" },
      h("td", { "data-testid": "kw-alert-time" }, fmtTime(a.raised_at)),
      h("td", { "data-testid": "kw-alert-who" }, [a.seat, a.agent_id].filter(Boolean).join(" · ")),
      h("td", { "data-testid": "kw-alert-caller" }, a.caller_number || ""),
      h("td", {}, keywordTags(a)),
      h("td", { class: "kw-excerpt", "data-testid": "kw-alert-excerpt" }, a.excerpt || ""),
      h("td", { class: "not-big" }, h("div", { class: "rowactions" },
        h("button", { type: "button", class: "secondary", "data-testid": "kw-play",
          disabled: a.recording_id === undefined || a.recording_id === null,
          onclick: () => onPlay(a.recording_id, firstKeywordAt(a), a) }, t("kw.play")),
        h("button", { type: "button", "data-testid": "kw-complaint-open",
          onclick: () => openForm(a) }, t("kw.create_complaint")),
        h("button", { type: "button", class: "danger", "data-testid": "kw-dismiss",
          onclick: () => dismiss(a) }, t("kw.dismiss")))))));
  }

  function closeForm() {
    formFor = null;
    shown = null;
    formBox.classList.add("hidden");
    clear(formBox);
    render();
  }

  function showDone(a, number) {
    shown = { alert: a, number };
    clear(formBox, h("div", { class: "kw-done", "data-testid": "kw-complaint-done",
      "data-alert": a.id },
      h("span", {}, t("kw.created"), " "),
      h("strong", { "data-testid": "kw-order-number" }, number),
      h("button", { type: "button", class: "secondary", "data-testid": "kw-complaint-close",
        onclick: closeForm }, t("kw.close"))));
  }

  function showForm(a, p, typed = null) {
    shown = { alert: a, prefill: p };
    const account = p.account_no ?? p.account_number ?? "";
    const type = p.type ?? p.order_type ?? "complaint";
    const error = h("p", { class: "error", "data-testid": "kw-complaint-error" });
    const description = h("textarea", { id: "kw-description", name: "description", rows: 4,
      required: true, maxlength: 2000, "data-testid": "kw-description" });
    description.value = typed ?? p.description ?? "";
    const submit = h("button", { type: "submit", "data-testid": "kw-complaint-submit" },
      t("kw.submit"));
    const form = h("form", { class: "wo", "data-testid": "kw-complaint-form", "data-alert": a.id,
      onsubmit: async (ev) => {
        ev.preventDefault();
        submit.disabled = true;
        error.textContent = "";
        try {
          const order = await post(`/api/alerts/keywords/${encodeURIComponent(a.id)}/complaint`,
            { description: description.value });
          const number = order.number ?? order.work_order_number ?? "";
          alerts.close(a.id);
          formFor = null;
          showDone(a, number);
          toast(`${t("kw.created")}: ${number}`, "ok");
        } catch (e) {
          submit.disabled = false;
          error.textContent = errorText(e);
          // handled on another console meanwhile: no longer open (the form stays to read)
          if (e instanceof ApiError && e.status === 409) alerts.close(a.id);
        }
      } },
    h("h3", {}, t("kw.complaint_title")),
    h("dl", { class: "kv" },
      h("dt", {}, t("wo.type")), h("dd", { "data-testid": "kw-prefill-type", "data-type": type },
        t(`wotype.${type}`)),
      h("dt", {}, t("wo.caller_number")),
      h("dd", { "data-testid": "kw-prefill-caller" }, p.caller_number ?? a.caller_number ?? ""),
      h("dt", {}, t("wo.account_number")),
      h("dd", { "data-testid": "kw-prefill-account" }, account || t("common.none")),
      h("dt", {}, t("sup.call_id")),
      h("dd", { "data-testid": "kw-prefill-call" }, p.call_id ?? a.call_id ?? ""),
      h("dt", {}, t("kw.keywords")), h("dd", {}, keywordTags(a))),
    h("label", { for: "kw-description" }, t("wo.description")),
    description,
    h("div", { class: "controls" }, submit,
      h("button", { type: "button", class: "secondary", "data-testid": "kw-complaint-cancel",
        onclick: closeForm }, t("wo.cancel"))),
    error);
    clear(formBox, form);
    if (typed === null) description.focus();
  }

  async function openForm(a) {
    formFor = a.id;
    formBox.classList.remove("hidden");
    formBox.dataset.alert = String(a.id);
    clear(formBox, h("p", { class: "muted" }, t("kw.loading")));
    render();
    try {
      const p = await get(`/api/alerts/keywords/${encodeURIComponent(a.id)}/prefill`);
      if (formFor === a.id) showForm(a, p || {});
    } catch (e) {
      if (formFor !== a.id) return;
      clear(formBox, h("p", { class: "error", "data-testid": "kw-complaint-error" }, errorText(e)),
        h("button", { type: "button", class: "secondary", onclick: closeForm }, t("kw.close")));
    }
  }

  async function dismiss(a) {
    try {
      await post(`/api/alerts/keywords/${encodeURIComponent(a.id)}/dismiss`);
      if (formFor === a.id) closeForm();
      alerts.close(a.id);
      toast(t("kw.dismissed"), "ok");
    } catch (e) {
      // someone else handled it first: it is no longer open, whatever this page thought
      if (e instanceof ApiError && (e.status === 404 || e.status === 409)) alerts.close(a.id);
      toast(errorText(e), "error");
    }
  }

  /** The language changed: the list and the box again (an edited description is kept). */
  function relabel() {
    render();
    if (shown && shown.number !== undefined) showDone(shown.alert, shown.number);
    else if (shown && shown.prefill) {
      const typed = formBox.querySelector("textarea")?.value ?? null;
      showForm(shown.alert, shown.prefill, typed);
    }
  }

  return { render, relabel };
}

/** Put the open count on an element (the wallboard's tile, the board's, the panel's badge). */
export function showCount(el, n) {
  el.textContent = String(n);
  el.dataset.count = String(n);
  el.closest(".tile")?.classList.toggle("lit", n > 0);
}
