// Work-order rows with live SLA clocks, shared by the agent desktop and the supervisor console.
import { clear, fmtTime, h, slaClock } from "./api.js";
import { t, tOr } from "./i18n.js";

export const WORK_ORDER_TYPES = ["fault_repair", "bill_query", "outage_query", "consultation",
  "service_application", "complaint", "report", "suggestion", "praise", "urging"];
export const CLOSED = new Set(["resolved", "return_visit", "archived"]);

/** When the order's current commitment falls due (the API may nest its SLA clocks). */
export function dueOf(o) {
  if (o.sla_due_at) return o.sla_due_at;
  const sla = o.sla || o.sla_clocks;
  if (Array.isArray(sla)) {
    const open = sla.filter((c) => c && c.due_at && !c.met_at && !c.stopped_at);
    return (open[0] || sla[0] || {}).due_at || null;
  }
  if (sla && typeof sla === "object") return sla.due_at || sla.arrival_due_at || null;
  return null;
}

export function accountOf(o) {
  return o.account_no || o.account_number || (o.account && o.account.account_no) || null;
}

/** A <span> whose text the page's one-second tick refreshes from data-due. */
export function slaSpan(due) {
  return h("span", { class: "sla", "data-testid": "sla-clock", "data-due": due || "" });
}

export function tickSla(root = document, now = Date.now()) {
  for (const el of root.querySelectorAll(".sla[data-due]")) {
    const c = slaClock(el.dataset.due || null, now);
    el.textContent = c.text;
    el.className = `sla ${c.overdue ? "sla-bad" : c.left !== null && c.left < 900 ? "sla-warn" : "sla-ok"}`;
  }
}

export function orderRow(o, extra = []) {
  return h("tr", { "data-testid": "wo-row", "data-number": o.number },
    h("td", { "data-testid": "wo-number" }, o.number),
    h("td", {}, tOr("wotype", o.type)),
    h("td", {}, tOr("wostatus", o.status)),
    h("td", {}, slaSpan(dueOf(o))),
    ...extra);
}

export function renderOrders(tbody, orders, cols = 4) {
  if (!orders.length) {
    clear(tbody, h("tr", {}, h("td", { colspan: cols, class: "muted" }, t("wo.none"))));
    return;
  }
  clear(tbody, orders.map((o) => orderRow(o)));
  tickSla(tbody);
}

export { fmtTime };
