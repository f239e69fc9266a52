// Intake: the devices in radio range (POST /v1/intake/scan, again every few
// seconds while the page is open), and enrolling one (POST
// /v1/intake/enrollments) with its progress followed by long-polling
// GET /v1/intake/enrollments/{id}?wait_ms=...&version=....
//
// The PIN is read from its field once, sent, and the field emptied at once;
// the page keeps no copy.
"use strict";

import { api, ApiError, h, field, select, busy, can, showError, notice, clearMessages } from "./lib.js";

const SCAN_PAUSE_MS = 3000;
const STEP_NAMES = {
  link: "radio link and PIN exchange",
  hello: "device identity",
  keygen: "key pair",
  ca: "certificate signed",
  push: "certificate delivered",
  record: "recorded",
};

export function render(root, _parts, params) {
  root.append(h("h2", { tabindex: "-1", class: "page-title" }, "Intake"));
  if (!can("issue")) {
    root.append(h("p", {}, "Your role cannot enroll devices."));
    return null;
  }
  let stopped = false;
  let timer = null;
  const seen = new Map(); // address -> { row, name }

  // --- devices in range ------------------------------------------------
  const status = h("p", { class: "hint", "aria-live": "off" }, "Scanning…");
  const body = h("tbody", {});
  const scanTable = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, "Devices in range"),
      h("thead", {}, h("tr", {}, ["Address", "Name", "Class", "Signal", ""].map((t) => h("th", { scope: "col" }, t)))),
      body
    )
  );

  function upsert(d) {
    let e = seen.get(d.mac);
    if (!e) {
      const cells = [h("td", { class: "mac" }, d.mac), h("td", {}), h("td", {}), h("td", {})];
      const btn = h("button", { type: "button", class: "small", "aria-label": "Enroll " + d.mac, onclick: () => pick(d.mac) }, "Enroll");
      const row = h("tr", {}, cells, h("td", {}, btn));
      e = { row, cells };
      seen.set(d.mac, e);
      body.append(row);
    }
    e.name = d.name || "";
    e.cells[1].textContent = d.name || "";
    e.cells[2].textContent = d.class || "";
    e.cells[3].textContent = d.rssi === undefined || d.rssi === null ? "" : d.rssi + " dBm";
  }

  async function scan() {
    if (stopped) return;
    try {
      const r = await api("POST", "/v1/intake/scan", {});
      if (stopped) return;
      const now = new Set();
      for (const d of r.devices || []) {
        upsert(d);
        now.add(d.mac);
      }
      for (const [mac, e] of seen) {
        if (!now.has(mac) && !e.row.contains(document.activeElement)) {
          e.row.remove();
          seen.delete(mac);
        }
      }
      const t = new Date().toTimeString().slice(0, 8);
      status.textContent = "Last scan at " + t + ": " + now.size + (now.size === 1 ? " device" : " devices") + " in range";
    } catch (e) {
      if (stopped || (e instanceof ApiError && e.status === 401)) return;
      status.textContent = "The last scan failed: " + (e instanceof ApiError ? e.sentence() : e);
    }
    if (!stopped) timer = setTimeout(scan, SCAN_PAUSE_MS);
  }

  // --- the enrollment form --------------------------------------------------
  const mac = h("input", { readonly: true, autocomplete: "off", placeholder: "pick a device above" });
  const label = h("input", { autocomplete: "off", spellcheck: "false", required: true, maxlength: 32 });
  const pin = h("input", { type: "password", autocomplete: "off", required: true, maxlength: 64, inputmode: "numeric" });
  const keygen = select(
    [
      ["auto", "auto"],
      ["device", "device"],
      ["server", "server"],
    ],
    "auto"
  );
  const owner = h("input", { autocomplete: "off", maxlength: 128 });
  const groups = h("input", { autocomplete: "off", maxlength: 1024 });
  const replace = h("input", { type: "checkbox", id: "enroll-replace" });
  const submit = h("button", { type: "submit" }, "Enroll");
  const form = h(
    "form",
    { "aria-label": "Enroll a device", class: "panel" },
    h("h3", {}, "Enroll a device"),
    field("Device address", mac, "The address the radio sees; pick a device in range."),
    field("Label address", label, "Type the address printed on the device's label; it must be the same."),
    field("PIN", pin, "The setup PIN printed on the label."),
    field("Key pair made by", keygen, "auto: the device if it can, else provd."),
    field("Owner", owner),
    field("Groups", groups, "Separated by commas."),
    h("div", { class: "check" }, replace, h("label", { for: "enroll-replace" }, "Replace the current certificate")),
    submit
  );
  const progress = h("ol", { "aria-label": "Enrollment progress", class: "progress" });
  const result = h("p", { id: "enroll-result", role: "status" });
  const after = h("p", {});

  function pick(address) {
    mac.value = address;
    label.value = "";
    label.focus();
  }
  if (params.get("mac")) mac.value = params.get("mac");
  if (params.get("replace") === "1") replace.checked = true;

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearMessages();
    if (!mac.value) {
      showError(new Error("Pick a device in range first (its Enroll button)."));
      return;
    }
    const req = { mac: mac.value, label_mac: label.value.trim(), pin: pin.value, keygen: keygen.value, replace: replace.checked };
    pin.value = "";
    if (owner.value.trim()) req.owner = owner.value.trim();
    const gs = groups.value
      .split(",")
      .map((g) => g.trim())
      .filter(Boolean);
    if (gs.length) req.groups = gs;
    const e = seen.get(mac.value);
    if (e && e.name) req.name = e.name;
    busy(submit, async () => {
      progress.replaceChildren();
      result.textContent = "";
      after.replaceChildren();
      let job;
      try {
        job = await api("POST", "/v1/intake/enrollments", req);
      } finally {
        req.pin = "";
      }
      await follow(job);
    });
  });

  function drawSteps(job) {
    const items = (job.steps || []).map((s) =>
      h("li", { class: "done" }, s.step + ": done in " + s.ms + " ms", STEP_NAMES[s.step] ? " (" + STEP_NAMES[s.step] + ")" : "")
    );
    if (job.status === "running") items.push(h("li", { class: "now" }, job.step + ": in progress…"));
    else if (job.status === "failed") items.push(h("li", { class: "failed" }, job.step + ": failed"));
    progress.replaceChildren(...items);
  }

  async function follow(job) {
    drawSteps(job);
    while (job.status === "running" && !stopped) {
      job = await api("GET", "/v1/intake/enrollments/" + job.id + "?wait_ms=20000&version=" + job.version);
      if (!stopped) drawSteps(job);
    }
    if (stopped) return;
    if (job.status === "succeeded") {
      result.textContent = "Enrolled " + job.mac + ": certificate " + job.serial + ".";
      after.replaceChildren(h("a", { href: "#/devices/" + encodeURIComponent(job.mac) }, "Open device " + job.mac));
      notice("Enrolled " + job.mac + ".");
    } else {
      result.textContent = "Failed at " + job.step + ": " + (job.error || "no reason given") + ".";
    }
  }

  root.append(h("div", { class: "cols" }, h("section", {}, scanTable, status), h("section", {}, form, progress, result, after)));
  scan();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
