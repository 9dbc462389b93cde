// The login page: user id, password, seat; agents go to the desktop, supervisors and admins to
// the console, a department's users to their orders. A password an admin reset (a temporary
// one) is changed here first: the server refuses everything else until it is.
import { ApiError, post } from "./api.js";
import { addStrings, applyI18n, bindLangToggle, getLang, t } from "./i18n.js";

addStrings({
  "pw.title": "请设置新密码",
  "pw.why": "管理员为您设置了临时密码，继续之前请设置新密码（至少 8 位）。",
  "pw.new": "新密码",
  "pw.again": "再次输入新密码",
  "pw.submit": "保存并继续",
  "pw.mismatch": "两次输入的密码不一致",
  "pw.failed": "未能修改密码",
}, {
  "pw.title": "Choose a new password",
  "pw.why": "An admin gave you a temporary password: choose your own (8 characters or more) "
    + "before you go on.",
  "pw.new": "New password",
  "pw.again": "New password again",
  "pw.submit": "Save and continue",
  "pw.mismatch": "The two passwords differ",
  "pw.failed": "The password was not changed",
});

const form = document.getElementById("login");
const change = document.getElementById("change");
const error = document.getElementById("error");
const pwError = document.getElementById("pw-error");
bindLangToggle(document.getElementById("lang"));
applyI18n(document);

const reason = new URLSearchParams(location.search).get("reason");
if (reason === "session") error.textContent = t("err.session");
else if (reason === "forced") error.textContent = t("err.forced_logout");

let current = "";  // the temporary password, for the change
let me = null;

function home(who) {
  if (who.role === "agent") return "agent.html";
  if (who.role === "department") return "department.html";
  return "supervisor.html";
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  error.textContent = "";
  const seat = form.seat.value.trim();
  const body = { user_id: form.user_id.value.trim(), password: form.password.value,
                 lang: getLang() === "en" ? "en" : "zh" };
  if (seat) body.seat = seat;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    me = await post("/api/auth/login", body);
    if (me.must_change_password) {
      current = body.password;
      form.classList.add("hidden");
      change.classList.remove("hidden");
      change.querySelector("#pw-new").focus();
      return;
    }
    location.href = home(me);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) error.textContent = t("login.bad_credentials");
    else if (e instanceof ApiError && e.status === 429) error.textContent = t("login.rate_limited");
    else error.textContent = `${t("login.failed")}: ${e.detail || e.message}`;
  } finally {
    button.disabled = false;
  }
});

change.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  pwError.textContent = "";
  if (change.new.value !== change.again.value) {
    pwError.textContent = t("pw.mismatch");
    return;
  }
  const button = change.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await post("/api/auth/password", { current, new: change.new.value });
    location.href = home(me);
  } catch (e) {
    pwError.textContent = `${t("pw.failed")}: ${e.detail || e.message}`;
  } finally {
    button.disabled = false;
  }
});
