// The admin console's staff and skills (issue 15 §1): add a user of any role, with skills and
// proficiency for one who takes calls, or a department for a department's user; change skills
// (a logged-in agent is offered calls by them from their next offer); disable and enable; reset
// a password (a temporary one, shown once). Add skills. The server checks the admin role and
// audits every change; this page only shows what it may use.
import { ApiError, api, clear, errorText, get, h, post, toLogin, toast } from "./api.js";
import { addStrings, applyI18n, bindLangToggle, getLang, t } from "./i18n.js";

addStrings({
  "adm.title": "系统管理",
  "adm.flows": "IVR 流程",
  "adm.staff": "人员与技能",
  "adm.id": "工号",
  "adm.name": "姓名",
  "adm.role": "角色",
  "adm.department": "部门",
  "adm.skills": "技能（熟练度）",
  "adm.skills_level": "技能与熟练度（1-5，坐席、班长）",
  "adm.status": "状态",
  "adm.active": "启用",
  "adm.disabled": "已停用",
  "adm.must_change": "待改密码",
  "adm.add": "新增人员",
  "adm.add_submit": "新增",
  "adm.added": "已新增 {1}，临时密码（仅显示一次，首次登录须修改）：",
  "adm.reset": "重置密码",
  "adm.reset_done": "{1} 的临时密码（仅显示一次，下次登录须修改）：",
  "adm.disable": "停用",
  "adm.enable": "启用",
  "adm.edit_skills": "修改技能",
  "adm.save": "保存",
  "adm.cancel": "取消",
  "adm.saved": "已保存，坐席下一次分配即按新技能",
  "adm.skill_list": "技能组",
  "adm.skill": "技能",
  "adm.label_zh": "中文名",
  "adm.label_en": "英文名",
  "adm.holders": "坐席数",
  "adm.add_skill": "新增技能",
  "adm.none": "无",
  "adm.only_admin": "无权访问：该页面仅限系统管理员使用",
  "role.agent": "坐席", "role.supervisor": "班长", "role.admin": "管理员",
  "role.department": "部门人员",
  "dept.repair": "抢修（运检）", "dept.marketing": "营销", "dept.metering": "计量",
}, {
  "adm.title": "Administration",
  "adm.flows": "IVR flows",
  "adm.staff": "Staff and skills",
  "adm.id": "ID",
  "adm.name": "Name",
  "adm.role": "Role",
  "adm.department": "Department",
  "adm.skills": "Skills (proficiency)",
  "adm.skills_level": "Skills and proficiency (1-5, agents and supervisors)",
  "adm.status": "Status",
  "adm.active": "Active",
  "adm.disabled": "Disabled",
  "adm.must_change": "Must change password",
  "adm.add": "Add a user",
  "adm.add_submit": "Add",
  "adm.added": "{1} added. Temporary password (shown once, changed at the first login):",
  "adm.reset": "Reset password",
  "adm.reset_done": "Temporary password for {1} (shown once, changed at the next login):",
  "adm.disable": "Disable",
  "adm.enable": "Enable",
  "adm.edit_skills": "Edit skills",
  "adm.save": "Save",
  "adm.cancel": "Cancel",
  "adm.saved": "Saved: the agent's next offer follows the new skills",
  "adm.skill_list": "Skills",
  "adm.skill": "Skill",
  "adm.label_zh": "Chinese name",
  "adm.label_en": "English name",
  "adm.holders": "Agents",
  "adm.add_skill": "Add skill",
  "adm.none": "none",
  "adm.only_admin": "Access denied: this page is for administrators",
  "role.agent": "Agent", "role.supervisor": "Supervisor", "role.admin": "Admin",
  "role.department": "Department user",
  "dept.repair": "Repair", "dept.marketing": "Marketing", "dept.metering": "Metering",
});

const $ = (id) => document.getElementById(id);
const ROLES = ["agent", "supervisor", "admin", "department"];
const DEPTS = ["repair", "marketing", "metering"];
const SKILLED = ["agent", "supervisor"];
const S = { me: null, staff: [], skills: [], editing: null };

bindLangToggle($("lang"));
applyI18n(document);

function skillLabel(name) {
  const k = S.skills.find((x) => x.name === name);
  if (!k) return name;
  return getLang() === "en" ? k.label_en : k.label_zh;
}

function skillsText(skills) {
  const names = Object.keys(skills).sort();
  if (!names.length) return t("adm.none");
  return names.map((n) => `${skillLabel(n)} ${skills[n]}`).join("，");
}

/** Checkbox and proficiency per skill; values from `skills`. */
function skillPicker(box, skills, testPrefix) {
  const rows = S.skills.filter((k) => k.active).map((k) => {
    const on = k.name in skills;
    const check = h("input", { type: "checkbox", name: `skill-${k.name}`, checked: on,
      "data-testid": `${testPrefix}-skill-${k.name}` });
    const level = h("input", { type: "number", min: 1, max: 5, value: skills[k.name] || 3,
      name: `level-${k.name}`, class: "narrow", "data-testid": `${testPrefix}-level-${k.name}` });
    return h("label", { class: "skill-pick" }, check, ` ${skillLabel(k.name)} `, level);
  });
  box.querySelectorAll(".skill-pick").forEach((el) => el.remove());
  box.append(...rows);
}

function pickedSkills(box) {
  const out = {};
  for (const k of S.skills) {
    const check = box.querySelector(`input[name="skill-${k.name}"]`);
    const level = box.querySelector(`input[name="level-${k.name}"]`);
    if (check && check.checked) out[k.name] = Number(level.value);
  }
  return out;
}

function showTemp(message, password) {
  $("temp-for").textContent = message;
  $("temp-password").textContent = password;
  $("temp").classList.remove("hidden");
}

function staffRow(u) {
  const id = u.agent_id;
  const actions = h("div", { class: "controls" });
  if (SKILLED.includes(u.role)) {
    actions.append(h("button", { type: "button", class: "secondary",
      "data-testid": `edit-skills-${id}`, onclick: () => { S.editing = id; render(); } },
    t("adm.edit_skills")));
  }
  actions.append(h("button", { type: "button", class: "secondary",
    "data-testid": `reset-${id}`, onclick: () => reset(id) }, t("adm.reset")));
  if (id !== S.me.user_id) {
    actions.append(h("button", { type: "button", class: u.active ? "danger" : "secondary",
      "data-testid": `${u.active ? "disable" : "enable"}-${id}`,
      onclick: () => setActive(id, !u.active) }, t(u.active ? "adm.disable" : "adm.enable")));
  }
  let skillsCell = skillsText(u.skills);
  if (S.editing === id) {
    const box = h("div", { class: "skill-editor", "data-testid": `skills-editor-${id}` });
    skillPicker(box, u.skills, `edit-${id}`);
    box.append(h("div", { class: "controls" },
      h("button", { type: "button", "data-testid": `save-skills-${id}`,
        onclick: () => saveSkills(id, pickedSkills(box)) }, t("adm.save")),
      h("button", { type: "button", class: "secondary",
        onclick: () => { S.editing = null; render(); } }, t("adm.cancel"))));
    skillsCell = box;
  }
  const status = [u.active ? t("adm.active") : t("adm.disabled")];
  if (u.must_change_password) status.push(t("adm.must_change"));
  return h("tr", { "data-testid": `staff-${id}`, class: u.active ? "" : "muted" },
    h("td", {}, id), h("td", {}, u.name), h("td", {}, t(`role.${u.role}`)),
    h("td", {}, u.department ? t(`dept.${u.department}`) : ""),
    h("td", { "data-testid": `skills-of-${id}` }, skillsCell),
    h("td", { "data-testid": `status-of-${id}` }, status.join("，")), h("td", {}, actions));
}

function render() {
  clear($("staff-rows"), S.staff.map(staffRow));
  clear($("skill-rows"), S.skills.map((k) => h("tr", { "data-testid": `skill-${k.name}` },
    h("td", {}, k.name), h("td", {}, k.label_zh), h("td", {}, k.label_en),
    h("td", {}, String(k.agents)))));
  const role = $("a-role").value || "agent";
  clear($("a-role"), ROLES.map((r) => h("option", { value: r, selected: r === role },
    t(`role.${r}`))));
  const dept = $("a-dept").value || "repair";
  clear($("a-dept"), DEPTS.map((d) => h("option", { value: d, selected: d === dept },
    t(`dept.${d}`))));
  $("a-dept").disabled = role !== "department";
  $("a-skills").disabled = !SKILLED.includes(role);
  skillPicker($("a-skills"), pickedSkills($("a-skills")), "add");
}

async function load() {
  [S.staff, S.skills] = await Promise.all([get("/api/admin/staff"), get("/api/admin/skills")]);
  render();
}

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

function reset(id) {
  return act(async () => {
    const doc = await post(`/api/admin/staff/${encodeURIComponent(id)}/password-reset`);
    showTemp(t("adm.reset_done", { 1: id }), doc.temporary_password);
    await load();
  });
}

function setActive(id, active) {
  return act(async () => {
    await api("PUT", `/api/admin/staff/${encodeURIComponent(id)}/active`, { active });
    await load();
  });
}

function saveSkills(id, skills) {
  return act(async () => {
    await api("PUT", `/api/admin/staff/${encodeURIComponent(id)}/skills`, { skills });
    S.editing = null;
    toast(t("adm.saved"));
    await load();
  });
}

$("a-role").addEventListener("change", render);

$("add-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const role = f.role.value;
  const body = { agent_id: f.agent_id.value.trim(), name: f.name.value.trim(), role,
    skills: SKILLED.includes(role) ? pickedSkills($("a-skills")) : {} };
  if (role === "department") body.department = f.department.value;
  act(async () => {
    const doc = await post("/api/admin/staff", body);
    showTemp(t("adm.added", { 1: doc.agent_id }), doc.temporary_password);
    f.reset();
    skillPicker($("a-skills"), {}, "add");
    await load();
  }, $("add-error"));
});

$("skill-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  act(async () => {
    S.skills = await post("/api/admin/skills", { name: f.name.value.trim(),
      label_zh: f.label_zh.value.trim(), label_en: f.label_en.value.trim() });
    f.reset();
    render();
  }, $("skill-error"));
});

$("logout").addEventListener("click", async () => {
  try { await post("/api/auth/logout"); } catch { /* gone already */ }
  toLogin("");
});

document.addEventListener("langchange", () => render());

(async () => {
  try {
    S.me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  $("who").textContent = `${S.me.name} (${S.me.user_id})`;
  if (S.me.role !== "admin") {
    $("denied").textContent = t("adm.only_admin");
    $("denied").classList.remove("hidden");
    $("main").classList.add("hidden");
    return;
  }
  await act(load);
})();
