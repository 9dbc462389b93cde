// The login page: user id, password, seat; agents go to the desktop, supervisors to the console.
import { ApiError, post } from "./api.js";
import { applyI18n, bindLangToggle, getLang, t } from "./i18n.js";

const form = document.getElementById("login");
const error = document.getElementById("error");
bindLangToggle(document.getElementById("lang"));
applyI18n(document);

const reason = new URLSearchParams(location.search).get("reason");
if (reason === "session") error.textContent = t("err.session");
else if (reason === "forced") error.textContent = t("err.forced_logout");

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
    const me = await post("/api/auth/login", body);
    location.href = me.role === "agent" ? "agent.html" : "supervisor.html";
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) error.textContent = t("login.bad_credentials");
    else if (e instanceof ApiError && e.status === 429) error.textContent = t("login.rate_limited");
    else error.textContent = `${t("login.failed")}: ${e.detail || e.message}`;
  } finally {
    button.disabled = false;
  }
});
