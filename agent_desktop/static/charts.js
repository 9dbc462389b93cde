// Hand-drawn SVG charts (no library, no build step): the workload reports' series and bars
// (reports.js) and the wallboard's trend of the day (supervisor.js) draw with these.
import { clear } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with its attributes (and text). */
export function svgEl(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

/** The chart's frame: axes and the top value. Returns the plotting area. */
export function frame(svg, max) {
  const box = { x: 40, y: 10, w: 590, h: 180 };
  svg.append(svgEl("line", { class: "axis", x1: box.x, y1: box.y + box.h, x2: box.x + box.w,
    y2: box.y + box.h }));
  svg.append(svgEl("line", { class: "axis", x1: box.x, y1: box.y, x2: box.x, y2: box.y + box.h }));
  svg.append(svgEl("text", { x: 4, y: box.y + 10 }, max));
  svg.append(svgEl("text", { x: 4, y: box.y + box.h }, 0));
  return box;
}

/** A line per name over the rows (each row holds a number per name), the first and last
 * row's labels under the axis. Each line is a polyline of class `name`, test id
 * `${prefix}-${name}`, with data-points (how many) and data-values (the values). */
export function lines(svg, rows, names, { prefix, first, last, aria }) {
  clear(svg);
  const max = Math.max(1, ...rows.flatMap((r) => names.map((n) => Number(r[n]) || 0)));
  const box = frame(svg, max);
  const x = (i) => box.x + (rows.length < 2 ? box.w / 2 : (i * box.w) / (rows.length - 1));
  const y = (v) => box.y + box.h - ((Number(v) || 0) / max) * box.h;
  for (const name of names) {
    const points = rows.map((r, i) => `${x(i).toFixed(1)},${y(r[name]).toFixed(1)}`);
    svg.append(svgEl("polyline", { class: name, points: points.join(" "),
      "data-testid": `${prefix}-${name}`, "data-points": rows.length,
      "data-values": rows.map((r) => Number(r[name]) || 0).join(",") }));
  }
  if (rows.length) {
    svg.append(svgEl("text", { x: box.x, y: 212 }, first));
    svg.append(svgEl("text", { x: box.x + box.w, y: 212, "text-anchor": "end" }, last));
  }
  svg.setAttribute("aria-label", aria);
}
