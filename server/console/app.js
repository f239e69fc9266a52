// Placeholder console: logs in with POST /v1/session (the session cookie is
// HttpOnly and set by provd), shows the session, logs out with
// DELETE /v1/session and the session's CSRF token. No inline script: the
// Content-Security-Policy allows only files served by provd.
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = null;

function say(text) {
  $("message").textContent = text;
}

function show(session) {
  csrf = session ? session.csrf_token : null;
  $("login").hidden = !!session;
  $("session").hidden = !session;
  if (session) {
    $("who").textContent = session.name;
    $("role").textContent = session.role;
    $("until").textContent = new Date(session.expires_at).toLocaleString();
  }
}

async function current() {
  const r = await fetch("/v1/session", { credentials: "same-origin" });
  show(r.ok ? await r.json() : null);
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say("");
  const body = JSON.stringify({ name: $("name").value, password: $("password").value });
  $("password").value = "";
  const r = await fetch("/v1/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body,
  });
  if (r.status === 201) {
    show(await r.json());
  } else if (r.status === 429) {
    say("Too many failed logins; try again in " + (r.headers.get("Retry-After") || "a few") + " seconds.");
  } else {
    say("The name or the password is wrong.");
  }
});

$("logout").addEventListener("click", async () => {
  await fetch("/v1/session", {
    method: "DELETE",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf || "" },
  });
  show(null);
  say("Logged out.");
});

current().catch(() => say("provd cannot be reached."));
