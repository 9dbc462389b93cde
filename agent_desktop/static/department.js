// A department's own orders (issue 15 §1): a repair crew's, marketing's or metering's user
// accepts the orders dispatched to them (接单), records arriving on site (到达现场) and the
// resolution (处理完成, with what was done). The server shows them their department's orders
// only and checks every step; the SLA clock that runs out first is listed first.
import { ApiError, clear, errorText, fmtTime, get, h, post, slaClock, toLogin, toast }
  from "./api.js";
import { addStrings, applyI18n, bindLangToggle, getLang, t } from "./i18n.js";

addStrings({
  "dep.title.repair": "抢修工单", "dep.title.marketing": "营销工单",
  "dep.title.metering": "计量工单",
  "dep.refresh": "刷新",
  "dep.open": "待处理工单",
  "dep.done": "已处理工单",
  "dep.none_open": "暂无待处理工单",
  "dep.number": "工单号", "dep.type": "类型", "dep.description": "内容",
  "dep.customer": "客户", "dep.due": "时限", "dep.status": "状态",
  "dep.accept": "接单", "dep.on_site": "到达现场", "dep.resolve": "处理完成",
  "dep.note": "处理结果",
  "dep.done_ok": "工单 {1} 已更新",
  "dep.only_department": "无权访问：该页面仅限部门人员使用",
}, {
  "dep.title.repair": "Repair orders", "dep.title.marketing": "Marketing orders",
  "dep.title.metering": "Metering orders",
  "dep.refresh": "Refresh",
  "dep.open": "Orders to work",
  "dep.done": "Orders done",
  "dep.none_open": "No order to work",
  "dep.number": "Order", "dep.type": "Type", "dep.description": "Description",
  "dep.customer": "Customer", "dep.due": "Due", "dep.status": "Status",
  "dep.accept": "Accept", "dep.on_site": "On site", "dep.resolve": "Resolved",
  "dep.note": "What was done",
  "dep.done_ok": "Order {1} updated",
  "dep.only_department": "Access denied: this page is for department users",
});

const $ = (id) => document.getElementById(id);
const S = { me: null, open: [], done: [] };

bindLangToggle($("lang"));
applyI18n(document);

const label = (doc, key) => (doc[key] ? doc[key][getLang() === "en" ? "en" : "zh"] : "");

/** The department's next steps from the order's status (the server decides; these are hints). */
function steps(o) {
  if (o.status === "dispatched") return ["department_accepted"];
  if (o.status === "department_accepted") {
    return o.type === "fault_repair" ? ["on_site"] : ["on_site", "resolved"];
  }
  if (o.status === "on_site") return ["resolved"];
  return [];
}
const STEP_TEXT = { department_accepted: "dep.accept", on_site: "dep.on_site",
  resolved: "dep.resolve" };

function openRow(o) {
  const note = h("input", { class: "full", maxlength: 2000, "data-testid": `note-${o.number}`,
    placeholder: t("dep.note") });
  const buttons = steps(o).map((to) => h("button", { type: "button",
    "data-testid": `step-${to}-${o.number}`,
    onclick: () => step(o.number, to, to === "resolved" ? note.value.trim() : "") },
  t(STEP_TEXT[to])));
  const due = o.sla_due_at ? `${fmtTime(o.sla_due_at)}（${slaClock(o.sla_due_at).text}）` : "";
  return h("tr", { "data-testid": `order-${o.number}` },
    h("td", {}, o.number), h("td", {}, label(o, "type_label")),
    h("td", {}, o.description), h("td", {}, o.account_no || o.caller_number || ""),
    h("td", {}, due), h("td", { "data-testid": `status-${o.number}` }, label(o, "status_label")),
    h("td", {}, steps(o).includes("resolved") ? note : "", h("div", { class: "controls" }, buttons)));
}

function render() {
  clear($("open-rows"), S.open.map(openRow));
  $("open-empty").classList.toggle("hidden", S.open.length > 0);
  clear($("done-rows"), S.done.map((o) => h("tr", { "data-testid": `done-${o.number}` },
    h("td", {}, o.number), h("td", {}, label(o, "type_label")), h("td", {}, o.description),
    h("td", {}, label(o, "status_label")))));
  if (S.me) $("dept-name").textContent = t(`dep.title.${S.me.department}`);
}

async function load() {
  const [open, done] = await Promise.all([get("/api/department/orders?scope=open"),
    get("/api/department/orders?scope=done")]);
  S.open = open.items;
  S.done = done.items;
  render();
}

async function step(number, to, note) {
  try {
    await post(`/api/department/orders/${encodeURIComponent(number)}/step`,
      note ? { to, note } : { to });
    toast(t("dep.done_ok", { 1: number }));
    await load();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return toLogin("session");
    toast(errorText(e), "error");
  }
}

$("refresh").addEventListener("click", () => load().catch((e) => toast(errorText(e), "error")));
$("logout").addEventListener("click", async () => {
  try { await post("/api/auth/logout"); } catch { /* gone already */ }
  toLogin("");
});
document.addEventListener("langchange", render);

(async () => {
  try {
    S.me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  $("who").textContent = `${S.me.name} (${S.me.user_id})`;
  if (S.me.role !== "department") {
    $("denied").textContent = t("dep.only_department");
    $("denied").classList.remove("hidden");
    $("main").classList.add("hidden");
    return;
  }
  await load();
  setInterval(() => load().catch(() => {}), 30000);  // new dispatches without a reload
})();
