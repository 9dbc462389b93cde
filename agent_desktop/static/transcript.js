// The transcript beside the recordings player: every word a span that seeks the audio when
// clicked, the word being spoken highlighted as it plays (timeupdate), the alert keywords
// marked; a transcript still queued or running says so and is fetched again a little later.
import { ApiError, clear, errorText, get, h } from "./api.js";
import { t, tOr } from "./i18n.js";

export const TRANSCRIPT_STATUSES = ["none", "queued", "running", "done", "failed"];
const REPOLL_MS = 5000;
// a word stays lit this long past its end (vosk leaves gaps between words)
const LINGER_S = 0.3;
// a seek lands on the word's start give or take a sample: it counts as that word
const EPS_S = 0.05;

/** The recordings table's cell: the transcript's status and the keywords it hit. */
export function transcriptCell(rec) {
  const status = TRANSCRIPT_STATUSES.includes(rec.transcript_status) ? rec.transcript_status
    : "none";
  const kws = [...new Set((rec.keywords || []).map((k) => (typeof k === "string" ? k : k.word)))];
  return h("td", {},
    h("span", { class: `tr-badge tr-${status}`, "data-testid": "rec-transcript-status",
      "data-status": status }, tOr("tr.status", status)),
    kws.map((w) => h("span", { class: "tag kw-tag", "data-testid": "rec-keyword" }, w)));
}

/** Which word indexes belong to a keyword hit: the words from the hit's start whose text,
 * joined, spells the keyword (a keyword may span words: "12345" as "123" "45"). */
function keywordIndexes(words, keywords) {
  const hit = new Set();
  const norm = (s) => String(s || "").replace(/\s+/g, "").toLowerCase();
  for (const k of keywords || []) {
    const target = norm(k.word);
    if (!target) continue;
    let i = words.findIndex((w) => Math.abs(Number(w.s) - Number(k.start)) < 0.05);
    if (i < 0) i = words.findIndex((w) => norm(w.w) === target);
    let spelled = "";
    const taken = [];
    for (; i >= 0 && i < words.length; i += 1) {
      const next = spelled + norm(words[i].w);
      if (!target.startsWith(next) && !next.startsWith(target)) break;
      taken.push(i);
      spelled = next;
      if (spelled.length >= target.length) break;
    }
    for (const j of taken) hit.add(j);
  }
  return hit;
}

/**
 * The view over one <audio> and one box. show(id) fetches and draws a recording's transcript;
 * the player's own events move the highlight, so a seek by the controls lights the right word.
 */
export function transcriptView(player, box) {
  let shownId = null;
  let spans = [];   // the word spans in start order
  let lit = null;
  let repoll = null;

  function light() {
    const now = player.currentTime;
    let lo = 0;
    let hi = spans.length - 1;
    let idx = -1;
    while (lo <= hi) {   // the last word starting at or before now
      const mid = (lo + hi) >> 1;
      if (Number(spans[mid].dataset.start) <= now + EPS_S) { idx = mid; lo = mid + 1; } else hi = mid - 1;
    }
    const el = idx >= 0 && now <= Number(spans[idx].dataset.end) + LINGER_S ? spans[idx] : null;
    if (el === lit) return;
    if (lit) { lit.classList.remove("speaking"); delete lit.dataset.speaking; }
    lit = el;
    if (el) {
      el.classList.add("speaking");
      el.dataset.speaking = "1";
      box.dataset.speaking = el.dataset.index;
    } else delete box.dataset.speaking;
  }
  for (const ev of ["timeupdate", "seeked", "play"]) player.addEventListener(ev, light);

  function seek(seconds) {
    player.currentTime = seconds;
    player.play().catch(() => { /* autoplay may be refused; the position is set */ });
    light();
  }

  function message(status, key) {
    box.dataset.status = status;
    clear(box, h("p", { class: "muted", "data-testid": "transcript-status", "data-status": status },
      t(key)));
  }

  function draw(doc) {
    const words = Array.isArray(doc.words) ? doc.words : [];
    const hits = keywordIndexes(words, doc.keywords);
    // Mandarin has no spaces between words; the other languages do
    const sep = String(doc.lang || "").startsWith("zh") ? "" : " ";
    lit = null;
    spans = words.map((w, i) => h("span", {
      class: `tw${hits.has(i) ? " kw" : ""}`, "data-testid": "transcript-word",
      "data-index": i, "data-start": Number(w.s), "data-end": Number(w.e ?? w.s),
      "data-keyword": hits.has(i) ? "1" : null, tabindex: "0", role: "button",
      title: w.c !== undefined && w.c !== null
        ? `${Number(w.s).toFixed(2)} s · ${Math.round(Number(w.c) * 100)}%` : null,
      onclick: () => seek(Number(w.s)),
      onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); seek(Number(w.s)); } },
    }, w.w));
    box.dataset.status = "done";
    const kws = [...new Set((doc.keywords || []).map((k) => k.word))];
    clear(box,
      h("div", { class: "tr-head muted" },
        doc.lang ? `${t("tr.lang")}: ${doc.lang}` : null,
        kws.length ? h("span", {}, ` · ${t("kw.keywords")}: `,
          kws.map((k) => h("span", { class: "tag kw-tag" }, k))) : null,
        spans.length ? ` · ${t("tr.click_hint")}` : null),
      spans.length
        ? h("p", { class: "tr-text", lang: doc.lang || null, "data-testid": "transcript-text" },
          spans.flatMap((s, i) => (i && sep ? [sep, s] : [s])))
        : h("p", { class: "muted", "data-testid": "transcript-status", "data-status": "empty" },
          doc.text ? doc.text : t("tr.empty")));
    light();
  }

  async function load(id) {
    clearTimeout(repoll);
    let doc;
    try {
      doc = await get(`/api/recordings/${encodeURIComponent(id)}/transcript`);
    } catch (e) {
      if (shownId !== id) return;
      if (e instanceof ApiError && e.status === 404) return message("none", "tr.none_text");
      if (e instanceof ApiError && e.status === 403) return message("forbidden", "err.forbidden");
      box.dataset.status = "error";
      return clear(box, h("p", { class: "error", "data-testid": "transcript-status",
        "data-status": "error" }, errorText(e)));
    }
    if (shownId !== id) return; // another recording was chosen meanwhile
    const status = TRANSCRIPT_STATUSES.includes(doc.status) ? doc.status : "none";
    if (status === "done") return draw(doc);
    spans = [];
    lit = null;
    message(status, `tr.${status}_text`);
    if (status === "failed" && doc.error) {
      box.append(h("p", { class: "muted small", "data-testid": "transcript-error" }, doc.error));
    }
    if (status === "queued" || status === "running") {
      repoll = setTimeout(() => { if (shownId === id && !document.hidden) load(id); }, REPOLL_MS);
    }
  }

  return {
    /** Draw recording `id`'s transcript (fetched again if it is the one shown). */
    show(id) {
      shownId = id;
      box.dataset.id = String(id);
      message("loading", "kw.loading");
      return load(id);
    },
    seek,
    /** Redraw in the current language. */
    refresh() { if (shownId !== null) load(shownId); },
  };
}
