// The console's frame: logging in and out, the session, and the hash routes
// (#/overview, #/intake, #/devices, #/devices/MAC, #/rules, #/audit). Each
// page is a module whose render(root, params) draws into the page element
// and may return a function that stops what it started (timers, polls).
"use strict";

import { session, api, ApiError, setExpiredHandler, clear, clearMessages, showError } from "./lib.js";
import * as overview from "./overview.js";
import * as intake from "./intake.js";
import * as devices from "./devices.js";
import * as rules from "./rules.js";
import * as audit from "./audit.js";

const $ = (id) => document.getElementById(id);
let stopPage = null;

function setSession(s) {
  session.name = s ? s.name : null;
  session.role = s ? s.role : null;
  session.csrf = s ? s.csrf_token : null;
  $("login").hidden = !!s;
  $("account").hidden = !s;
  $("sections").hidden = !s;
  $("page").hidden = !s;
  if (s) $("who").textContent = "Logged in as " + s.name + " (" + s.role + ")";
}

function showLogin(message) {
  if (stopPage) stopPage();
  stopPage = null;
  clear($("page"));
  setSession(null);
  document.title = "Log in – provd console";
  $("notice").textContent = "";
  $("error").textContent = message || "";
  $("name").focus();
}

setExpiredHandler(() => showLogin("Your session has ended; log in again."));

// Routes: the first part of the hash path picks the page.
const ROUTES = {
  overview: [overview, "Overview"],
  intake: [intake, "Intake"],
  devices: [devices, "Devices"],
  rules: [rules, "Access rules"],
  audit: [audit, "Audit"],
};

async function route() {
  if (!session.name) return;
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, qs] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const [mod, title] = ROUTES[parts[0]] || ROUTES.overview;
  if (stopPage) stopPage();
  stopPage = null;
  clearMessages();
  for (const a of $("sections").querySelectorAll("a")) {
    if (a.getAttribute("href") === "#/" + (ROUTES[parts[0]] ? parts[0] : "overview")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = clear($("page"));
  document.title = title + " – provd console";
  try {
    stopPage = (await mod.render(root, parts.slice(1), new URLSearchParams(qs || ""))) || null;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
  }
  // Move focus to the page heading so that screen readers announce it.
  const h = root.querySelector(".page-title");
  if (h && document.activeElement === document.body) h.focus();
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearMessages();
  const body = { name: $("name").value, password: $("password").value };
  $("password").value = "";
  try {
    const s = await api("POST", "/v1/session", body);
    body.password = "";
    setSession(s);
    if (!location.hash || location.hash === "#") location.hash = "#/overview";
    else route();
  } catch (e) {
    body.password = "";
    if (e instanceof ApiError && e.status === 401) $("error").textContent = "The name or the password is wrong.";
    else if (e instanceof ApiError && e.status === 429)
      $("error").textContent = "Too many failed logins; try again in a few minutes.";
    else $("error").textContent = e instanceof ApiError ? e.sentence() : String(e);
    $("password").focus();
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await api("DELETE", "/v1/session");
  } catch (e) {
    // already ended: the login form is what we want either way
  }
  showLogin("");
  $("notice").textContent = "Logged out.";
});

window.addEventListener("hashchange", route);

async function start() {
  try {
    const s = await api("GET", "/v1/session");
    setSession(s);
    route();
  } catch (e) {
    showLogin(e instanceof ApiError && e.status !== 401 ? e.sentence() : "");
  }
}
start();
