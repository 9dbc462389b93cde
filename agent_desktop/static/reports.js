// The workload reports (工作量统计, issue 15 §4) for supervisors and admins: the call figures
// per period and per center, skill or agent, as a time series (offered and answered, a line
// each) and bars (answered per skill, agent or period), drawn here as SVG (no library, no
// build step), with the table of every figure and CSV/XLSX exports; the work-order figures
// below. The server checks the role; REPORTS.md defines every figure.
import { ApiError, clear, errorText, get, h, post, toLogin } from "./api.js";
import { frame, lines, svgEl } from "./charts.js";
import { addStrings, applyI18n, bindLangToggle, t } from "./i18n.js";

addStrings({
  "rp.title": "工作量统计",
  "rp.workload": "话务工作量",
  "rp.workorders": "工单统计（按日）",
  "rp.from": "开始日期",
  "rp.to": "结束日期",
  "rp.interval": "统计周期",
  "rp.by": "维度",
  "rp.show": "查询",
  "rp.csv": "导出 CSV",
  "rp.xlsx": "导出 Excel",
  "rp.series": "呼入量与接通量",
  "rp.bars_key": "接通量（按{1}）",
  "rp.bars_period": "接通量（按周期）",
  "rp.counted": "已统计至 {1}",
  "rp.not_counted": "尚未统计",
  "rp.empty": "所选时间内没有已统计的数据",
  "rp.only_sup": "无权访问：该页面仅限班长和管理员使用",
  "rp.i.15": "15 分钟", "rp.i.30": "30 分钟", "rp.i.60": "60 分钟",
  "rp.i.day": "日", "rp.i.week": "周", "rp.i.month": "月",
  "rp.b.center": "全中心", "rp.b.skill": "技能组", "rp.b.agent": "坐席",
  "rp.period": "周期", "rp.key": "技能组/坐席",
  "rp.f.offered": "呼入量", "rp.f.answered": "接通量", "rp.f.abandoned": "放弃量",
  "rp.f.abandoned_short": "短放弃", "rp.f.service_level": "服务水平",
  "rp.f.asa_s": "平均应答时长(秒)", "rp.f.aht_s": "平均处理时长(秒)",
  "rp.f.avg_hold_s": "平均保持时长(秒)", "rp.f.callbacks_requested": "预约回呼",
  "rp.f.callbacks_connected": "回呼接通",
  "rp.f.occupancy": "占用率", "rp.f.utilisation": "利用率", "rp.f.rona": "振铃未接",
  "rp.f.transfers": "转接", "rp.f.deflected": "停电分流", "rp.f.satisfaction": "满意度",
  "rp.all": "全部",
}, {
  "rp.title": "Workload reports",
  "rp.workload": "Call workload",
  "rp.workorders": "Work orders (per day)",
  "rp.from": "From",
  "rp.to": "To",
  "rp.interval": "Interval",
  "rp.by": "By",
  "rp.show": "Show",
  "rp.csv": "Export CSV",
  "rp.xlsx": "Export Excel",
  "rp.series": "Offered and answered",
  "rp.bars_key": "Answered per {1}",
  "rp.bars_period": "Answered per period",
  "rp.counted": "Counted up to {1}",
  "rp.not_counted": "Not counted yet",
  "rp.empty": "Nothing counted in these days",
  "rp.only_sup": "Access denied: this page is for supervisors and administrators",
  "rp.i.15": "15 min", "rp.i.30": "30 min", "rp.i.60": "60 min",
  "rp.i.day": "Day", "rp.i.week": "Week", "rp.i.month": "Month",
  "rp.b.center": "Center", "rp.b.skill": "Skill", "rp.b.agent": "Agent",
  "rp.period": "Period", "rp.key": "Skill / agent",
  "rp.f.offered": "Offered", "rp.f.answered": "Answered", "rp.f.abandoned": "Abandoned",
  "rp.f.abandoned_short": "Short abandons", "rp.f.service_level": "Service level",
  "rp.f.asa_s": "ASA (s)", "rp.f.aht_s": "AHT (s)", "rp.f.occupancy": "Occupancy",
  "rp.f.avg_hold_s": "Avg hold (s)", "rp.f.callbacks_requested": "Callbacks asked",
  "rp.f.callbacks_connected": "Callbacks connected",
  "rp.f.utilisation": "Utilisation", "rp.f.rona": "RONA", "rp.f.transfers": "Transfers",
  "rp.f.deflected": "Deflected", "rp.f.satisfaction": "Satisfaction",
  "rp.all": "All",
});

const $ = (id) => document.getElementById(id);
const INTERVALS = ["15", "30", "60", "day", "week", "month"];
const BYS = ["center", "skill", "agent"];
const SHOWN = ["offered", "answered", "abandoned", "abandoned_short", "service_level", "asa_s",
  "aht_s", "avg_hold_s", "occupancy", "utilisation", "rona", "transfers", "deflected",
  "callbacks_requested", "callbacks_connected", "satisfaction"];
const RATES = new Set(["service_level", "occupancy", "utilisation"]);
const S = { doc: null, orders: null, seq: 0 };

bindLangToggle($("lang"));
applyI18n(document);

function fmt(name, v) {
  if (v === null || v === undefined) return "—";
  if (RATES.has(name)) return `${(v * 100).toFixed(1)}%`;
  return String(v);
}

function label(period, interval) {
  return interval.match(/^\d+$/) ? period.slice(5, 16).replace("T", " ") : period.slice(0, 10);
}

function series(svg, periods, interval) {
  lines(svg, periods, ["offered", "answered"], { prefix: "series",
    first: periods.length ? label(periods[0].period, interval) : "",
    last: periods.length ? label(periods[periods.length - 1].period, interval) : "",
    aria: t("rp.series") });
}

function bars(svg, items) {
  clear(svg);
  const max = Math.max(1, ...items.map((b) => b.value));
  const box = frame(svg, max);
  const w = box.w / Math.max(1, items.length);
  items.forEach((b, i) => {
    const hgt = (b.value / max) * box.h;
    const bar = svgEl("rect", { class: "bar", x: box.x + i * w + 2, y: box.y + box.h - hgt,
      width: Math.max(1, w - 4), height: hgt, "data-testid": "bar", "data-key": b.key,
      "data-value": b.value });
    bar.append(svgEl("title", {}, `${b.key}: ${b.value}`));
    svg.append(bar);
    if (items.length <= 20) {
      svg.append(svgEl("text", { x: box.x + i * w + w / 2, y: 205, "text-anchor": "middle" },
        b.key));
    }
  });
}

function query(form) {
  const p = new URLSearchParams();
  for (const name of ["from", "to", "interval", "by"]) {
    if (form[name].value) p.set(name, form[name].value);
  }
  return p;
}

function renderWorkload() {
  const doc = S.doc;
  if (!doc) return;
  const interval = doc.interval;
  $("rp-counted").textContent = doc.counted_until
    ? t("rp.counted", { 1: doc.counted_until.slice(0, 16).replace("T", " ") })
    : t("rp.not_counted");
  clear($("rp-head"), h("th", {}, t("rp.period")), doc.by === "center" ? null
    : h("th", {}, t(`rp.b.${doc.by}`)), SHOWN.map((f) => h("th", {}, t(`rp.f.${f}`))));
  clear($("rp-rows"), doc.rows.length ? doc.rows.map((r) => h("tr", {
    "data-testid": "report-row", "data-period": r.period, "data-key": r.key ?? "" },
  h("td", {}, label(r.period, interval)),
  doc.by === "center" ? null : h("td", {}, r.key ?? "—"),
  SHOWN.map((f) => h("td", { "data-testid": `cell-${f}` }, fmt(f, r.figures[f])))))
    : [h("tr", {}, h("td", { colspan: SHOWN.length + 2, "data-testid": "report-empty" },
      t("rp.empty")))]);
  const perPeriod = new Map();
  const perKey = new Map();
  for (const r of doc.rows) {
    const p = perPeriod.get(r.period) || { period: r.period, offered: 0, answered: 0 };
    p.offered += r.figures.offered;
    p.answered += r.figures.answered;
    perPeriod.set(r.period, p);
    const k = r.key ?? "—";
    perKey.set(k, (perKey.get(k) || 0) + r.figures.answered);
  }
  const periods = [...perPeriod.values()];
  series($("rp-series"), periods, interval);
  if (doc.by === "center") {
    $("rp-bars-cap").textContent = t("rp.bars_period");
    bars($("rp-bars"), periods.map((p) => ({ key: label(p.period, interval),
      value: p.answered })));
  } else {
    $("rp-bars-cap").textContent = t("rp.bars_key", { 1: t(`rp.b.${doc.by}`) });
    bars($("rp-bars"), [...perKey.entries()].map(([key, value]) => ({ key, value })));
  }
}

function renderOrders() {
  const doc = S.orders;
  if (!doc) return;
  const names = [];
  for (const r of doc.rows) for (const k of Object.keys(r.figures)) if (!names.includes(k)) names.push(k);
  clear($("wo-head"), h("th", {}, t("rp.period")), names.map((n) => h("th", {}, n)));
  clear($("wo-rows"), doc.rows.map((r) => h("tr", { "data-testid": "workorder-row" },
    h("td", {}, r.period), names.map((n) => h("td", { "data-figure": n },
      fmt(n.endsWith("compliance") || n.endsWith("satisfaction") ? "service_level" : n,
        r.figures[n]))))));
}

async function load() {
  const form = $("rp-form");
  const p = query(form);
  $("rp-error").textContent = "";
  $("rp-csv").href = `/api/reports/workload.csv?${p}`;
  $("rp-xlsx").href = `/api/reports/workload.xlsx?${p}`;
  const wo = new URLSearchParams();
  for (const k of ["from", "to"]) if (p.get(k)) wo.set(k, p.get(k));
  $("wo-csv").href = `/api/reports/workorders.csv?${wo}`;
  $("wo-xlsx").href = `/api/reports/workorders.xlsx?${wo}`;
  const seq = ++S.seq;  // a slower earlier answer must not replace a later one
  let doc, orders;
  try {
    [doc, orders] = await Promise.all([get(`/api/reports/workload?${p}`),
      get(`/api/reports/workorders?${wo}`)]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return toLogin("session");
    if (seq === S.seq) $("rp-error").textContent = errorText(e);
    return;
  }
  if (seq !== S.seq) return;
  [S.doc, S.orders] = [doc, orders];
  // the default days (today) into an empty form; never over what the user typed meanwhile
  if (!form.from.value) form.from.value = S.doc.from;
  if (!form.to.value) form.to.value = S.doc.to;
  renderWorkload();
  renderOrders();
}

function renderSelects() {
  const form = $("rp-form");
  const interval = form.interval.value || "day";
  const by = form.by.value || "center";
  clear(form.interval, INTERVALS.map((i) => h("option", { value: i, selected: i === interval },
    t(`rp.i.${i}`))));
  clear(form.by, BYS.map((b) => h("option", { value: b, selected: b === by }, t(`rp.b.${b}`))));
}

$("rp-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  load();
});

$("logout").addEventListener("click", async () => {
  try { await post("/api/auth/logout"); } catch { /* gone already */ }
  toLogin("");
});

document.addEventListener("langchange", () => { renderSelects(); renderWorkload(); });

(async () => {
  let me;
  try {
    me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  $("who").textContent = `${me.name} (${me.user_id})`;
  renderSelects();
  if (!["supervisor", "admin"].includes(me.role)) {
    $("denied").textContent = t("rp.only_sup");
    $("denied").classList.remove("hidden");
    $("main").classList.add("hidden");
    return;
  }
  await load();
})();
