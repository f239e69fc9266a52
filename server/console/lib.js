// Shared pieces of the console: building elements, calling the REST API with
// the session cookie and CSRF token, turning API errors into sentences,
// notices, confirmation dialogs and formatting.
//
// Every text that comes from the server goes into the page through
// textContent (h() below never parses HTML), so a device name cannot inject
// markup. No inline script or style: the Content-Security-Policy forbids it.
"use strict";

export const session = { name: null, role: null, csrf: null };

// What each role may do, as the server enforces it (docs/operations.md, the
// role table). The pages leave out the controls a role cannot use; the
// server refuses them anyway.
const RIGHTS = {
  issue: ["operator", "admin"],
  revoke: ["operator", "security", "admin"],
  policy: ["security", "admin"],
  audit: ["security", "admin"],
};
export function can(right) {
  return (RIGHTS[right] || []).includes(session.role);
}

// h("button", { type: "button", onclick: f }, "Text", child...)
// Attributes: "class", "for", "text", on* handlers, boolean true/false,
// "aria-*" and anything else as attributes; null/undefined are skipped.
export function h(tag, attrs, ...children) {
  const ns = SVG_TAGS.has(tag) ? "http://www.w3.org/2000/svg" : null;
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}
const SVG_TAGS = new Set(["svg", "g", "rect", "line", "text", "title", "path"]);

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// ---------------------------------------------------------------------
// Messages

const $ = (id) => document.getElementById(id);

export function notice(text) {
  $("error").textContent = "";
  $("notice").textContent = text;
}
export function clearMessages() {
  $("error").textContent = "";
  $("notice").textContent = "";
}
export function showError(err) {
  $("notice").textContent = "";
  $("error").textContent = err instanceof ApiError ? err.sentence() : String(err.message || err);
}

// ---------------------------------------------------------------------
// The API

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
  // The error as a person reads it, with the request id for the log.
  sentence() {
    let text = this.message;
    if (this.status === 403 && this.code === "csrf")
      text = "The page lost its security token; reload the page and try again.";
    else if (this.status === 403)
      text = "Your role (" + (session.role || "none") + ") may not do this. " + this.message;
    else if (this.status === 429)
      text = "provd is busy or limiting requests; wait a moment and try again.";
    else if (this.status === 0)
      text = "provd cannot be reached: check that it runs and that this computer can reach it.";
    else if (this.status >= 500 && !this.message)
      text = "provd could not do this because of a problem on the server; the server log has the details.";
    if (text && !/[.!?]$/.test(text)) text += ".";
    return this.requestId ? text + " (request id " + this.requestId + ")" : text;
  }
}

// Called when a request answers 401: the session has ended.
let onExpired = () => {};
export function setExpiredHandler(f) {
  onExpired = f;
}

// api("POST", "/v1/...", body) -> parsed JSON (or null). Throws ApiError.
export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = session.csrf || "";
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", "", null);
  }
  const rid = r.headers.get("X-Request-Id");
  let data = null;
  const text = await r.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (r.ok) return data;
  const e = (data && data.error) || {};
  const err = new ApiError(r.status, e.code || "", e.message || "", e.request_id || rid);
  if (r.status === 401 && path !== "/v1/session") onExpired();
  throw err;
}

// The query string for a GET, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

// ---------------------------------------------------------------------
// Dialogs: a modal <dialog> with a title, content and two buttons. Resolves
// true on confirm, false on cancel or Escape. Focus returns where it was.

export function confirmDialog(title, content, confirmLabel) {
  return new Promise((resolve) => {
    const back = document.activeElement;
    const id = "dlg-" + Math.random().toString(36).slice(2);
    const yes = h("button", { type: "submit", class: "danger", value: "yes" }, confirmLabel);
    const no = h("button", { type: "button" }, "Cancel");
    const form = h("form", { method: "dialog" }, h("h2", { id }, title), content, h("div", { class: "buttons" }, yes, no));
    const dlg = h("dialog", { "aria-labelledby": id }, form);
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      if (back && back.focus) back.focus();
      resolve(ok);
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      finish(true);
    });
    no.addEventListener("click", () => finish(false));
    dlg.addEventListener("cancel", (ev) => {
      ev.preventDefault();
      finish(false);
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = content.querySelector ? content.querySelector("select, input") : null;
    (first || no).focus();
  });
}

// ---------------------------------------------------------------------
// Forms and tables

// A labelled control: field("Owner", h("input", {...})) -> <div><label/>ctl</div>
let fieldSeq = 0;
export function field(label, control, hint) {
  if (!control.id) control.id = "f" + ++fieldSeq;
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hid = control.id + "-hint";
    control.setAttribute("aria-describedby", hid);
    parts.push(h("small", { id: hid, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(options, value) {
  return h(
    "select",
    {},
    options.map((o) => {
      const [v, t] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: v === value }, t);
    })
  );
}

// A table with a caption: table("Devices", ["Address", ...], rows of cells)
export function table(caption, headings, rows, empty) {
  const body = h("tbody", {});
  for (const row of rows) body.append(h("tr", {}, row.map((c) => h("td", {}, c))));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
      body
    ),
    rows.length === 0 && empty ? h("p", { class: "empty" }, empty) : null
  );
}

// Runs an async action for a button: disables it meanwhile, shows errors.
export async function busy(button, f) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await f();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------------
// Formatting

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toISOString().replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
}
export function day(iso) {
  return iso ? String(iso).slice(0, 10) : "";
}
export function macPath(mac) {
  return encodeURIComponent(mac);
}
export function heading(text) {
  return h("h2", { tabindex: "-1", class: "page-title" }, text);
}
