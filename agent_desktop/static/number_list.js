// A list of telephone numbers in the supervisor console, with reason, who and when: the
// do-not-call list (dnc.js) and the inbound caller lists (nuisance, VIP; issue 15 §3). Add one
// (number + reason) or remove one. The server checks the role, validates the number (any
// spelling, kept in national form) and audits each change.
import { ApiError, clear, del, errorText, fmtTime, get, h, post, toast } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

/** The panel whose elements are `${id}-list`, `${id}-form`, `${id}-error`, rows `${id}-row`,
 * over `url` (GET lists, POST adds, DELETE url/number removes), its words under `${text}.`;
 * `extra(row)`: more cells after the reason (the nuisance reports). */
export function numberListPanel({ id, url, text, extra = null, columns = 5 }) {
  let seq = 0;
  let rows = [];

  function render() {
    clear($(`${id}-list`), rows.length ? rows.map((r) => h("tr", {
      "data-testid": `${id}-row`, "data-number": r.number },
    h("td", { "data-testid": `${id}-number` }, r.number),
    h("td", { "data-testid": `${id}-reason` }, r.reason),
    ...(extra ? extra(r) : []),
    h("td", { "data-testid": `${id}-added-by` }, r.added_by),
    h("td", {}, fmtTime(r.added_at)),
    h("td", {}, h("button", { type: "button", class: "secondary", "data-testid": `${id}-remove`,
      onclick: (ev) => remove(r.number, ev.currentTarget) }, t(`${text}.remove`)))))
      : h("tr", { "data-testid": `${id}-empty` },
        h("td", { colspan: columns, class: "muted" }, t(`${text}.empty`))));
  }

  async function load() {
    const mine = ++seq;
    try {
      const list = await get(url);
      if (mine !== seq) return;   // a later load (after a change) draws the list
      rows = list;
      render();
    } catch (e) { if (!(e instanceof ApiError && e.status === 403)) toast(errorText(e), "error"); }
  }

  async function add(ev) {
    ev.preventDefault();
    const form = ev.currentTarget;
    const err = $(`${id}-error`);
    err.textContent = "";
    const number = form.elements.number.value.trim();
    const reason = form.elements.reason.value.trim();
    if (!number || !reason) {
      err.textContent = t(number ? "dnc.need_reason" : "dnc.need_number");
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const r = await post(url, { number, reason });
      form.reset();
      toast(t(`${text}.added`, { 1: r.number }), "info");
      await load();
    } catch (e) {
      err.textContent = errorText(e);
    } finally {
      button.disabled = false;
    }
  }

  async function remove(number, button) {
    if (!window.confirm(t(`${text}.confirm_remove`, { 1: number }))) return;
    button.disabled = true;
    try {
      await del(`${url}/${encodeURIComponent(number)}`);
      toast(t(`${text}.removed`, { 1: number }), "info");
    } catch (e) {
      toast(errorText(e), "error");
    }
    await load();
  }

  $(`${id}-form`).addEventListener("submit", add);
  return { load, relabel: render };
}
