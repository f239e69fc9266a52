// Audit: the audit log, newest first, filtered by actor, action or device
// (GET /v1/audit, paged by sequence number), and the hash chain's check
// (POST /v1/audit/verify) for security and admin.
"use strict";

import { api, h, field, table, busy, can, query, when, clearMessages } from "./lib.js";

const PAGE = 100;

function detailText(d) {
  if (!d || typeof d !== "object") return "";
  return Object.entries(d)
    .filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v))
    .join(" ");
}

export async function render(root, _parts, params) {
  root.append(h("h2", { tabindex: "-1", class: "page-title" }, "Audit"));
  const actor = h("input", { value: params.get("actor") || "", maxlength: 63, autocomplete: "off" });
  const action = h("input", { value: params.get("action") || "", maxlength: 64, autocomplete: "off" });
  const device = h("input", { value: params.get("device") || "", maxlength: 32, autocomplete: "off", spellcheck: "false" });
  const filter = h("button", { type: "submit" }, "Filter");
  const form = h(
    "form",
    { "aria-label": "Filter the audit log", class: "search" },
    field("Actor", actor, "Exactly: a token or account (console:NAME), ap:ADDRESS, system."),
    field("Action", action, "Exactly: certificate.revoke, rule.add, …"),
    field("Device", device, "An address."),
    filter
  );
  const verifyBox = h("div", { class: "panel" });
  if (can("audit")) {
    const vb = h("button", { type: "button" }, "Verify the chain");
    const out = h("p", { id: "verify-result", role: "status", class: "result" });
    vb.addEventListener("click", () => {
      clearMessages();
      out.textContent = "";
      busy(vb, async () => {
        const t0 = performance.now();
        const r = await api("POST", "/v1/audit/verify");
        const ms = Math.round(performance.now() - t0);
        if (r.ok) {
          out.textContent = "The audit chain is intact: " + r.rows + " entries verified in " + ms + " ms.";
          out.className = "result allow";
        } else {
          out.textContent =
            "The audit chain is broken at entry " + r.first_bad_seq + ": " + r.why + ". " + r.rows + " entries before it verify.";
          out.className = "result deny";
        }
      });
    });
    verifyBox.append(
      h("p", {}, "Each entry holds the hash of the one before; a changed or deleted entry breaks the chain from there on."),
      vb,
      out
    );
  }
  const list = h("div", {});
  const older = h("button", { type: "button", disabled: true }, "Older entries");
  root.append(form);
  if (can("audit")) root.append(verifyBox);
  root.append(list, h("div", { class: "buttons" }, older));

  let before = null;
  let rows = [];
  async function load(more) {
    const p = { actor: actor.value.trim(), action: action.value.trim(), device: device.value.trim(), limit: PAGE };
    if (more && before) p.before = before;
    const r = await api("GET", "/v1/audit" + query(p));
    const fresh = (r.entries || []).map((e) => [String(e.seq), when(e.at), e.actor, e.action, e.object || "", detailText(e.detail)]);
    rows = more ? rows.concat(fresh) : fresh;
    list.replaceChildren(table("Audit log", ["Seq", "Time", "Actor", "Action", "Object", "Detail"], rows, "No entry matches."));
    before = r.next || null;
    older.disabled = !before;
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearMessages();
    busy(filter, () => load(false));
  });
  older.addEventListener("click", () => busy(older, () => load(true)));
  await load(false);
  return null;
}
