// The red storm banner (恶劣天气应急) shared by the supervisor console, the outage pages and the
// board: read over REST on load and on every push (re)connect, then kept current by the
// retained hotline/storm message the desktop's /ws relays (type "storm").
import { fmtTime, get, h } from "./api.js";
import { t, tOr } from "./i18n.js";

let last = null;
// bumped by every state shown: a REST answer that started before a pushed state arrived is
// older than it, and is dropped
let seq = 0;

/** The banner element of the page (created at the top of <body> if the page has none). */
function banner() {
  let el = document.getElementById("storm-banner");
  if (!el) {
    el = h("div", { id: "storm-banner", class: "storm-banner hidden", role: "alert",
      "data-testid": "storm-banner" });
    const header = document.querySelector("header.top");
    if (header) header.after(el); else document.body.prepend(el);
  }
  return el;
}

/** Show the storm state `s` ({on, since, by, trigger}) in the banner; returns it. */
export function showStorm(s) {
  if (!s || typeof s.on !== "boolean") return last;
  last = s;
  seq += 1;
  const el = banner();
  el.classList.toggle("hidden", !s.on);
  el.dataset.on = s.on ? "1" : "0";
  document.body.classList.toggle("storm", s.on);
  el.replaceChildren(...(s.on ? [
    h("strong", {}, "⚠ ", t("storm.banner")),
    h("span", { class: "storm-who", "data-testid": "storm-who" },
      ` · ${t("storm.since")} ${fmtTime(s.since)} · ${t("storm.by")} ${s.by || ""}`
      + (s.trigger && s.trigger !== "manual" ? ` (${tOr("storm.trigger", s.trigger)})` : "")),
  ] : []));
  document.dispatchEvent(new CustomEvent("stormchange", { detail: s }));
  return s;
}

/** Read the state over REST and show it; a failure leaves the banner as it was. */
export async function loadStorm() {
  const asked = seq;
  try {
    const s = await get("/api/storm");
    return asked === seq ? showStorm(s) : last;
  } catch { return last; }
}

export function stormState() { return last; }

document.addEventListener("langchange", () => { if (last) showStorm(last); });
