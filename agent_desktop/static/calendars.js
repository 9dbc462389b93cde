// The skills' service hours in the admin console (服务时间, issue 15 §3): each skill's week (hours
// per weekday), what a call for it does after hours (route to an open skill, or offer a
// callback) and its holidays and special days. Admins change them; supervisors read them and
// get no edit controls. The server checks the role, checks every change (acd.calendar: bad
// hours, a loop of routes, the 7×24 skill) and audits it; a refusal's reason is shown at its
// form. The IVR reads the calendars at every transfer, so a change is heard from the next call.
import { ApiError, api, clear, del, errorText, fmtTime, get, h, post, toLogin, toast } from "./api.js";
import { addStrings, applyI18n, bindLangToggle, getLang, t, tOr } from "./i18n.js";

const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

addStrings({
  "cal.title": "服务时间",
  "cal.week_h": "各技能服务时间",
  "cal.explain": "时间为本中心所在时区的当地时间。未列出的技能全天 7×24 服务；修改从下一通来电起生效。",
  "cal.readonly": "只读：服务时间由系统管理员修改。",
  "cal.skill": "技能",
  "cal.mon": "周一", "cal.tue": "周二", "cal.wed": "周三", "cal.thu": "周四",
  "cal.fri": "周五", "cal.sat": "周六", "cal.sun": "周日",
  "cal.after_hours": "非服务时间",
  "cal.route_to": "转接到技能",
  "cal.route_text": "转接 {1}",
  "cal.callback_text": "提供预约回电",
  "cal.act.route": "转接到其他在岗技能",
  "cal.act.callback": "提供预约回电（不预约则转 7×24 人工）",
  "cal.updated": "最后修改",
  "cal.closed": "不服务",
  "cal.all_day": "全天",
  "cal.empty": "尚未设置服务时间：所有技能均 7×24 服务",
  "cal.days_h": "节假日与特殊工作日",
  "cal.days_empty": "无",
  "cal.day": "日期",
  "cal.kind": "类型",
  "cal.kind.holiday": "节假日（全天不服务）",
  "cal.kind.special": "特殊工作日（按所填时间）",
  "cal.hours": "服务时间",
  "cal.note": "备注",
  "cal.added": "添加人",
  "cal.edit": "修改",
  "cal.edit_h": "设置服务时间",
  "cal.hours_hint": "格式 08:00-12:00,13:30-20:00；跨零点写 22:00-06:00；全天写 24h；留空为不服务。",
  "cal.day_hours_hint": "如 09:00-12:00（仅特殊工作日）",
  "cal.note_hint": "如 国庆节",
  "cal.save": "保存服务时间",
  "cal.saved": "{1} 的服务时间已保存，下一通来电起生效",
  "cal.remove": "取消服务时间（恢复 7×24）",
  "cal.confirm_remove": "取消 {1} 的服务时间及其节假日？该技能将恢复 7×24 服务。",
  "cal.removed": "{1} 已恢复 7×24 服务",
  "cal.new": "（未设置）",
  "cal.add_day": "添加节假日或特殊工作日",
  "cal.add_day_submit": "添加",
  "cal.day_added": "已添加 {1}",
  "cal.remove_day": "删除",
  "cal.confirm_remove_day": "删除 {1}？该日恢复按星期的服务时间。",
  "cal.day_removed": "已删除 {1}",
  "cal.need_day": "请选择日期",
  "cal.only_staff": "无权访问：该页面仅限班长和系统管理员使用",
}, {
  "cal.title": "Service hours",
  "cal.week_h": "Service hours by skill",
  "cal.explain": "Times are the center's local time. A skill not listed is open 7×24; a change is heard from the next call on.",
  "cal.readonly": "Read only: administrators change the service hours.",
  "cal.skill": "Skill",
  "cal.mon": "Mon", "cal.tue": "Tue", "cal.wed": "Wed", "cal.thu": "Thu",
  "cal.fri": "Fri", "cal.sat": "Sat", "cal.sun": "Sun",
  "cal.after_hours": "After hours",
  "cal.route_to": "Route to skill",
  "cal.route_text": "Route to {1}",
  "cal.callback_text": "Offer a callback",
  "cal.act.route": "Route to another skill that is open",
  "cal.act.callback": "Offer a callback (declined: the 7×24 service)",
  "cal.updated": "Last changed",
  "cal.closed": "Closed",
  "cal.all_day": "All day",
  "cal.empty": "No service hours set: every skill is open 7×24",
  "cal.days_h": "Holidays and special days",
  "cal.days_empty": "None",
  "cal.day": "Date",
  "cal.kind": "Kind",
  "cal.kind.holiday": "Holiday (closed all day)",
  "cal.kind.special": "Special day (its own hours)",
  "cal.hours": "Hours",
  "cal.note": "Note",
  "cal.added": "Added by",
  "cal.edit": "Edit",
  "cal.edit_h": "Set service hours",
  "cal.hours_hint": "Write 08:00-12:00,13:30-20:00; past midnight 22:00-06:00; 24h for the whole day; empty for closed.",
  "cal.day_hours_hint": "e.g. 09:00-12:00 (special days only)",
  "cal.note_hint": "e.g. National Day",
  "cal.save": "Save hours",
  "cal.saved": "Service hours of {1} saved: heard from the next call on",
  "cal.remove": "Remove the hours (open 7×24)",
  "cal.confirm_remove": "Remove the service hours of {1} and its days? It will be open 7×24.",
  "cal.removed": "{1} is open 7×24 again",
  "cal.new": "(not set)",
  "cal.add_day": "Add a holiday or special day",
  "cal.add_day_submit": "Add",
  "cal.day_added": "{1} added",
  "cal.remove_day": "Remove",
  "cal.confirm_remove_day": "Remove {1}? The date follows its weekday's hours again.",
  "cal.day_removed": "{1} removed",
  "cal.need_day": "Choose a date",
  "cal.only_staff": "Access denied: this page is for supervisors and administrators",
});

const $ = (id) => document.getElementById(id);
// skills: the admin's skill list (labels, and what a calendar may route to); a supervisor
// cannot read it and sees the shared skill names instead
const S = { me: null, admin: false, cals: [], skills: [], selected: null };

bindLangToggle($("lang"));
applyI18n(document);

function skillLabel(name) {
  const k = S.skills.find((x) => x.name === name);
  if (!k) return tOr("skill", name);
  return getLang() === "en" ? k.label_en : k.label_zh;
}

function hoursText(hours) {
  if (!hours || hours === "closed") return t("cal.closed");
  return hours === "24h" ? t("cal.all_day") : hours;
}

const calOf = (skill) => S.cals.find((c) => c.skill === skill) || null;

function renderList() {
  clear($("cal-rows"), S.cals.length ? S.cals.map((c) => h("tr", {
    "data-testid": `cal-row-${c.skill}` },
  h("td", {}, skillLabel(c.skill)),
  ...WEEKDAYS.map((d) => h("td", { "data-testid": `cal-${c.skill}-${d}` }, hoursText(c.week[d]))),
  h("td", { "data-testid": `cal-${c.skill}-after` }, c.after_hours === "route"
    ? t("cal.route_text", { 1: skillLabel(c.route_to) }) : t("cal.callback_text")),
  h("td", { "data-testid": `cal-${c.skill}-updated` }, `${c.updated_by} · ${fmtTime(c.updated_at)}`),
  h("td", {}, S.admin ? h("button", { type: "button", class: "secondary",
    "data-testid": `cal-edit-${c.skill}`, onclick: () => select(c.skill) }, t("cal.edit")) : null)))
    : h("tr", { "data-testid": "cal-empty" },
      h("td", { colspan: 11, class: "muted" }, t("cal.empty"))));
  const days = S.cals.flatMap((c) => c.days.map((d) => ({ skill: c.skill, ...d })));
  clear($("day-rows"), days.length ? days.map((d) => h("tr", {
    "data-testid": `cal-day-${d.skill}-${d.day}` },
  h("td", {}, skillLabel(d.skill)), h("td", {}, d.day),
  h("td", { "data-testid": `cal-day-${d.skill}-${d.day}-kind` }, t(`cal.kind.${d.kind}`)),
  h("td", { "data-testid": `cal-day-${d.skill}-${d.day}-hours` }, hoursText(d.hours)),
  h("td", { "data-testid": `cal-day-${d.skill}-${d.day}-note` }, d.note),
  h("td", {}, `${d.added_by} · ${fmtTime(d.added_at)}`),
  h("td", {}, S.admin ? h("button", { type: "button", class: "secondary",
    "data-testid": `cal-day-remove-${d.skill}-${d.day}`,
    onclick: (ev) => removeDay(d.skill, d.day, ev.currentTarget) }, t("cal.remove_day")) : null)))
    : h("tr", { "data-testid": "cal-days-empty" },
      h("td", { colspan: 7, class: "muted" }, t("cal.days_empty"))));
}

/** The editor's option lists (skills, actions, route targets, day kinds), keeping the values. */
function renderOptions() {
  if (!S.admin) return;
  const names = S.skills.filter((k) => k.active || calOf(k.name)).map((k) => k.name);
  clear($("cal-skill"), names.map((n) => h("option", { value: n, selected: n === S.selected },
    skillLabel(n), calOf(n) ? "" : ` ${t("cal.new")}`)));
  const after = $("cal-after").value || "route";
  clear($("cal-after"), ["route", "callback"].map((a) => h("option", { value: a,
    selected: a === after }, t(`cal.act.${a}`))));
  const to = $("cal-route-to").value;
  clear($("cal-route-to"), names.filter((n) => n !== S.selected).map((n) => h("option", {
    value: n, selected: n === to }, skillLabel(n))));
  $("cal-route-to").disabled = $("cal-after").value !== "route";
  const kind = $("day-kind").value || "holiday";
  clear($("day-kind"), ["holiday", "special"].map((k) => h("option", { value: k,
    selected: k === kind }, t(`cal.kind.${k}`))));
  $("day-hours").disabled = $("day-kind").value !== "special";
}

/** The editor shows `skill`'s calendar as stored (or an empty week for a skill without one). */
function select(skill) {
  S.selected = skill;
  renderOptions();  // the route targets leave the selected skill out
  const c = calOf(skill);
  for (const d of WEEKDAYS) {
    const v = c ? c.week[d] : "";
    $(`h-${d}`).value = v === "closed" ? "" : v;
  }
  $("cal-after").value = c ? c.after_hours : "route";
  if (c && c.route_to) $("cal-route-to").value = c.route_to;
  $("cal-route-to").disabled = $("cal-after").value !== "route";
  $("cal-remove").classList.toggle("hidden", !c);
  $("cal-error").textContent = "";
  $("day-error").textContent = "";
}

async function load() {
  const [cals, skills] = await Promise.all([get("/api/calendars"),
    S.admin ? get("/api/admin/skills") : Promise.resolve([])]);
  S.cals = cals;
  S.skills = skills;
  renderList();
  if (S.admin) select(S.selected || (cals[0] && cals[0].skill) || (skills[0] && skills[0].name));
}

/** Run a change; its refusal (the server's reason) goes to `errorBox`, never a blank failure. */
async function act(fn, errorBox) {
  if (errorBox) errorBox.textContent = "";
  try {
    await fn();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return toLogin("session");
    if (errorBox) errorBox.textContent = errorText(e);
    else toast(errorText(e), "error");
  }
}

function buildWeekInputs() {
  clear($("cal-week"), WEEKDAYS.map((d) => h("div", {},
    h("label", { for: `h-${d}`, "data-i18n": `cal.${d}` }, t(`cal.${d}`)),
    h("input", { id: `h-${d}`, name: `h-${d}`, maxlength: 120, "data-testid": `cal-hours-${d}`,
      placeholder: t("cal.closed"), "data-i18n-placeholder": "cal.closed" }))));
}

async function removeDay(skill, day, button) {
  if (!window.confirm(t("cal.confirm_remove_day", { 1: day }))) return;
  button.disabled = true;
  await act(async () => {
    await del(`/api/calendars/${encodeURIComponent(skill)}/days/${day}`);
    toast(t("cal.day_removed", { 1: day }), "info");
  });
  await act(load);
}

function bindEditor() {
  buildWeekInputs();
  $("cal-skill").addEventListener("change", (ev) => select(ev.target.value));
  $("cal-after").addEventListener("change", () => {
    $("cal-route-to").disabled = $("cal-after").value !== "route";
  });
  $("day-kind").addEventListener("change", () => {
    $("day-hours").disabled = $("day-kind").value !== "special";
  });
  $("cal-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const skill = S.selected;
    const week = Object.fromEntries(WEEKDAYS.map((d) => [d, $(`h-${d}`).value.trim() || "closed"]));
    const after = $("cal-after").value;
    const button = ev.currentTarget.querySelector("button[type=submit]");
    button.disabled = true;
    act(async () => {
      await api("PUT", `/api/calendars/${encodeURIComponent(skill)}`, { week, after_hours: after,
        route_to: after === "route" ? $("cal-route-to").value || null : null });
      toast(t("cal.saved", { 1: skillLabel(skill) }), "info");
      await load();
    }, $("cal-error")).finally(() => { button.disabled = false; });
  });
  $("cal-remove").addEventListener("click", () => {
    const skill = S.selected;
    if (!window.confirm(t("cal.confirm_remove", { 1: skillLabel(skill) }))) return;
    act(async () => {
      await del(`/api/calendars/${encodeURIComponent(skill)}`);
      toast(t("cal.removed", { 1: skillLabel(skill) }), "info");
      await load();
    }, $("cal-error"));
  });
  $("day-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.currentTarget;
    const day = f.elements.day.value;
    if (!day) {
      $("day-error").textContent = t("cal.need_day");
      return;
    }
    const kind = f.elements.kind.value;
    const body = { kind, hours: kind === "special" ? f.elements.hours.value.trim() : "",
      note: f.elements.note.value.trim() };
    const button = f.querySelector("button[type=submit]");
    button.disabled = true;
    act(async () => {
      await api("PUT", `/api/calendars/${encodeURIComponent(S.selected)}/days/${day}`, body);
      toast(t("cal.day_added", { 1: day }), "info");
      f.elements.hours.value = "";
      f.elements.note.value = "";
      await load();
    }, $("day-error")).finally(() => { button.disabled = false; });
  });
}

$("logout").addEventListener("click", async () => {
  try { await post("/api/auth/logout"); } catch { /* gone already */ }
  toLogin("");
});

document.addEventListener("langchange", () => { renderList(); renderOptions(); });

(async () => {
  try {
    S.me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  $("who").textContent = `${S.me.name} (${S.me.user_id})`;
  if (!["supervisor", "admin"].includes(S.me.role)) {
    $("denied").textContent = t("cal.only_staff");
    $("denied").classList.remove("hidden");
    $("main").classList.add("hidden");
    return;
  }
  S.admin = S.me.role === "admin";
  $("nav-admin").classList.toggle("hidden", !S.admin);
  if (S.admin) {
    bindEditor();
  } else {
    // a supervisor gets no edit controls at all (the server refuses their changes anyway)
    $("cal-editor").remove();
    $("main").classList.add("read-only");
    $("cal-readonly").classList.remove("hidden");
  }
  await act(load);
})();
