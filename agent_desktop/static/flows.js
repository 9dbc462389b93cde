// IVR flows in the admin console (issue 15 §2): open a flow file, edit its YAML (a textarea
// with a line-number gutter), validate it with the whole set (errors listed, their lines marked
// in the gutter), see the diff against the live file, publish (the CTI reloads it as a file
// edit, for the next calls); the versions kept, each with who and when and a rollback; a
// preview of the live flow's prompts, node by node, in the page's language. The server checks
// the admin role, validates again on publish and refuses a publish from a stale base (409).
import { ApiError, clear, errorText, fmtTime, get, h, post, toLogin, toast } from "./api.js";
import { addStrings, applyI18n, bindLangToggle, getLang, t } from "./i18n.js";

addStrings({
  "flw.title": "IVR 流程",
  "flw.admin": "系统管理",
  "flw.list": "流程文件",
  "flw.file": "文件",
  "flw.id": "流程",
  "flw.nodes": "节点数",
  "flw.version": "线上版本",
  "flw.open": "打开",
  "flw.editor": "编辑",
  "flw.validate": "校验",
  "flw.diff": "与线上对比",
  "flw.publish": "发布",
  "flw.revert": "放弃修改",
  "flw.valid": "校验通过",
  "flw.invalid": "校验未通过：{1} 处错误",
  "flw.no_diff": "与线上版本相同",
  "flw.published": "已发布为版本 {1}，新来电即按新流程",
  "flw.rolled_back": "已回滚：版本 {1} 的内容已作为新版本 {2} 发布",
  "flw.confirm_rollback": "将版本 {1} 的内容重新发布为新版本？",
  "flw.history": "版本记录",
  "flw.source": "来源",
  "flw.by": "发布人",
  "flw.at": "时间",
  "flw.rollback": "回滚到此版本",
  "flw.live": "线上",
  "flw.src.publish": "发布",
  "flw.src.rollback": "回滚（自版本 {1}）",
  "flw.src.disk": "磁盘原有",
  "flw.reload_ok": "CTI 流程第 {1} 版，{2} 加载",
  "flw.reload_bad": "CTI 最近一次加载失败，第 {1} 版仍在服务：{2}",
  "flw.no_cti": "CTI 未运行（流程在其启动时加载）",
  "flw.preview": "提示音试听",
  "flw.preview_hint": "线上流程各节点播放的提示音（按页面语言）",
  "flw.node": "节点",
  "flw.prompt": "提示音",
  "flw.not_built": "未生成",
  "flw.unsaved": "有未发布的修改",
  "flw.only_admin": "无权访问：该页面仅限系统管理员使用",
}, {
  "flw.title": "IVR flows",
  "flw.admin": "Administration",
  "flw.list": "Flow files",
  "flw.file": "File",
  "flw.id": "Flow",
  "flw.nodes": "Nodes",
  "flw.version": "Live version",
  "flw.open": "Open",
  "flw.editor": "Edit",
  "flw.validate": "Validate",
  "flw.diff": "Diff against live",
  "flw.publish": "Publish",
  "flw.revert": "Discard changes",
  "flw.valid": "Valid",
  "flw.invalid": "Not valid: {1} error(s)",
  "flw.no_diff": "Same as the live version",
  "flw.published": "Published as version {1}: the next calls follow it",
  "flw.rolled_back": "Rolled back: version {1}'s text published as version {2}",
  "flw.confirm_rollback": "Publish version {1}'s text again as a new version?",
  "flw.history": "Versions",
  "flw.source": "Source",
  "flw.by": "By",
  "flw.at": "When",
  "flw.rollback": "Roll back to this",
  "flw.live": "live",
  "flw.src.publish": "published",
  "flw.src.rollback": "rollback (of version {1})",
  "flw.src.disk": "found on disk",
  "flw.reload_ok": "CTI flows version {1}, loaded {2}",
  "flw.reload_bad": "The CTI's last reload failed; version {1} keeps serving: {2}",
  "flw.no_cti": "The CTI is not running (it loads the flows when it starts)",
  "flw.preview": "Prompt preview",
  "flw.preview_hint": "The prompts each node of the live flow plays (in the page's language)",
  "flw.node": "Node",
  "flw.prompt": "Prompt",
  "flw.not_built": "not built",
  "flw.unsaved": "Unpublished changes",
  "flw.only_admin": "Access denied: this page is for administrators",
});

const $ = (id) => document.getElementById(id);
const S = { me: null, flows: [], reload: null, file: null, live: "", base: "", versions: [],
  prompts: [], bad: new Map() };
const enc = encodeURIComponent;

bindLangToggle($("lang"));
applyI18n(document);

function lang() { return getLang() === "en" ? "en" : "zh"; }

/** One numbered line per line of the text; an error's line marked, its message as a title. */
function renderGutter() {
  const n = $("text").value.split("\n").length;
  const lines = [];
  for (let i = 1; i <= n; i += 1) {
    const msg = S.bad.get(i);
    lines.push(h("div", { class: msg ? "bad" : "", title: msg || "",
      "data-testid": `gutter-line-${i}` }, String(i)));
  }
  clear($("gutter"), lines);
  $("gutter").scrollTop = $("text").scrollTop;
}

function renderFlows() {
  clear($("flow-rows"), S.flows.map((f) => h("tr", { "data-testid": `flow-${f.file}`,
    class: f.file === S.file ? "selected" : "" },
  h("td", {}, h("button", { type: "button", class: "secondary", "data-testid": `open-${f.file}`,
    onclick: () => act(() => open(f.file)) }, f.file)),
  h("td", {}, f.flow_id || "?"), h("td", {}, String(f.nodes)),
  h("td", { "data-testid": `live-version-${f.file}` }, f.version ? String(f.version) : "—"))));
  const r = S.reload;
  $("reload").textContent = !r ? t("flw.no_cti")
    : r.ok ? t("flw.reload_ok", { 1: r.version, 2: fmtTime(r.at) })
      : t("flw.reload_bad", { 1: r.version, 2: r.errors.join("; ") });
}

function sourceText(v) {
  return v.source === "rollback" ? t("flw.src.rollback", { 1: v.rollback_of })
    : t(`flw.src.${v.source}`);
}

function renderVersions() {
  const live = S.flows.find((f) => f.file === S.file);
  clear($("version-rows"), S.versions.map((v) => {
    const isLive = live && live.version === v.id;
    return h("tr", { "data-testid": `version-${v.id}` },
      h("td", {}, String(v.id)), h("td", { "data-testid": `version-source-${v.id}` },
        sourceText(v)),
      h("td", { "data-testid": `version-by-${v.id}` }, v.published_by),
      h("td", {}, fmtTime(v.published_at)),
      h("td", {}, isLive ? h("span", { "data-testid": `version-live-${v.id}` }, t("flw.live"))
        : h("button", { type: "button", class: "secondary", "data-testid": `rollback-${v.id}`,
          onclick: () => rollback(v.id) }, t("flw.rollback"))));
  }));
}

function renderPrompts() {
  const l = lang();
  clear($("prompt-rows"), S.prompts.map((p, i) => h("tr", { "data-testid": `prompt-${i}` },
    h("td", {}, `${p.node} · ${p.field}`), h("td", {}, h("code", {}, p.prompt_id)),
    h("td", {}, p.languages.includes(l)
      ? h("audio", { controls: true, preload: "none", "data-testid": `audio-${p.node}-${p.prompt_id}`,
        src: `/api/admin/prompts/${enc(p.prompt_id)}/${l}` })
      : t("flw.not_built")))));
}

function showErrors(errors) {
  S.bad = new Map();
  for (const e of errors) {
    if (e.file === S.file && !S.bad.has(e.line)) S.bad.set(e.line, e.message);
  }
  clear($("errors"), errors.map((e) => h("li", { "data-testid": `flow-error-${e.line}` },
    h("button", { type: "button", class: "link", onclick: () => goToLine(e.line) },
      `${e.file}:${e.line}`), `: ${e.message}`)));
  renderGutter();
}

/** Put the caret at the start of a line and scroll it into view. */
function goToLine(line) {
  const ta = $("text");
  const lines = ta.value.split("\n");
  const at = lines.slice(0, line - 1).reduce((n, s) => n + s.length + 1, 0);
  ta.focus();
  ta.setSelectionRange(at, at + (lines[line - 1] || "").length);
  ta.scrollTop = Math.max(0, (line - 5) * parseFloat(getComputedStyle(ta).lineHeight));
}

async function loadList() {
  const doc = await get("/api/admin/flows");
  S.flows = doc.flows;
  S.reload = doc.reload;
  renderFlows();
}

async function open(file) {
  const [doc, versions, prompts] = await Promise.all([
    get(`/api/admin/flows/${enc(file)}`), get(`/api/admin/flows/${enc(file)}/versions`),
    get(`/api/admin/flows/${enc(file)}/prompts`).catch(() => [])]);
  S.file = file;
  S.live = doc.text;
  S.base = doc.sha256;
  S.versions = versions;
  S.prompts = prompts;
  $("editing").textContent = file;
  $("text").value = doc.text;
  $("result").textContent = "";
  $("diff-view").classList.add("hidden");
  showErrors([]);
  renderFlows();
  renderVersions();
  renderPrompts();
}

async function act(fn) {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return toLogin("session");
    $("result").textContent = errorText(e);
    $("result").dataset.state = "error";
  }
}

function validate() {
  return act(async () => {
    const doc = await post(`/api/admin/flows/${enc(S.file)}/validate`, { text: $("text").value });
    showErrors(doc.errors);
    $("result").textContent = doc.ok ? t("flw.valid") : t("flw.invalid", { 1: doc.errors.length });
    $("result").dataset.state = doc.ok ? "ok" : "error";
  });
}

function diff() {
  return act(async () => {
    const doc = await post(`/api/admin/flows/${enc(S.file)}/diff`, { text: $("text").value });
    const view = $("diff-view");
    clear(view, doc.diff ? doc.diff.split("\n").map((line) => h("span", {
      class: line.startsWith("+") && !line.startsWith("+++") ? "add"
        : line.startsWith("-") && !line.startsWith("---") ? "del" : "" }, `${line}\n`))
      : [t("flw.no_diff")]);
    view.classList.remove("hidden");
  });
}

async function afterPublish(message) {
  await loadList();
  await open(S.file);
  $("result").textContent = message;
  $("result").dataset.state = "ok";
  toast(message);
}

function publish() {
  return act(async () => {
    const text = $("text").value;
    const check = await post(`/api/admin/flows/${enc(S.file)}/validate`, { text });
    showErrors(check.errors);
    if (!check.ok) {
      $("result").textContent = t("flw.invalid", { 1: check.errors.length });
      $("result").dataset.state = "error";
      return;
    }
    const v = await post(`/api/admin/flows/${enc(S.file)}/publish`,
      { text, base_sha256: S.base });
    await afterPublish(t("flw.published", { 1: v.id }));
  });
}

function rollback(id) {
  if (!window.confirm(t("flw.confirm_rollback", { 1: id }))) return undefined;
  return act(async () => {
    const v = await post(`/api/admin/flows/${enc(S.file)}/versions/${id}/rollback`,
      { base_sha256: S.base });
    await afterPublish(t("flw.rolled_back", { 1: id, 2: v.id }));
  });
}

$("text").addEventListener("input", () => {
  if (S.bad.size) S.bad = new Map();  // the lines moved: validate again to mark them
  renderGutter();
  $("result").textContent = $("text").value === S.live ? "" : t("flw.unsaved");
  $("result").dataset.state = "";
});
$("text").addEventListener("scroll", () => { $("gutter").scrollTop = $("text").scrollTop; });
$("validate").addEventListener("click", validate);
$("diff").addEventListener("click", diff);
$("publish").addEventListener("click", publish);
$("revert").addEventListener("click", () => act(() => open(S.file)));

$("logout").addEventListener("click", async () => {
  try { await post("/api/auth/logout"); } catch { /* gone already */ }
  toLogin("");
});

document.addEventListener("langchange", () => {
  renderFlows();
  renderVersions();
  renderPrompts();
});

(async () => {
  try {
    S.me = await get("/api/auth/me");
  } catch (e) {
    return toLogin(e instanceof ApiError && e.status === 401 ? "session" : "");
  }
  $("who").textContent = `${S.me.name} (${S.me.user_id})`;
  if (S.me.role !== "admin") {
    $("denied").textContent = t("flw.only_admin");
    $("denied").classList.remove("hidden");
    $("main").classList.add("hidden");
    return;
  }
  await act(async () => {
    await loadList();
    if (S.flows.length) await open(S.flows[0].file);
  });
})();
