// Devices: search and page (GET /v1/devices, keyset paging), and one device
// (GET /v1/devices/{mac}) with its certificates, recent decisions
// (GET /v1/decisions?mac=) and audit trail (GET /v1/audit?device=), and the
// changes a role may make: revoke (with a confirmation naming the device),
// release a hold, force renewal, re-intake, owner, groups, validity cap.
// The search is kept in the hash (#/devices?q=...) so Back returns to it.
"use strict";

import { api, ApiError, h, field, select, table, busy, can, notice, confirmDialog, query, when, day } from "./lib.js";

const PAGE = 50;
const STATUSES = ["any", "pending", "active", "revoked", "retired"];
const REASONS = ["unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "certificateHold"];

export function render(root, parts, params) {
  if (parts.length > 0) return renderDevice(root, parts[0]);
  return renderList(root, params);
}

// ---------------------------------------------------------------------
// The list

async function renderList(root, params) {
  root.append(h("h2", { tabindex: "-1", class: "page-title" }, "Devices"));
  const q = h("input", { type: "search", value: params.get("q") || "", maxlength: 128, autocomplete: "off", spellcheck: "false" });
  const status = select(STATUSES, params.get("status") || "any");
  const owner = h("input", { value: params.get("owner") || "", maxlength: 128, autocomplete: "off" });
  const group = h("input", { value: params.get("group") || "", maxlength: 128, autocomplete: "off" });
  const expires = h("input", { type: "date", value: params.get("expires_before") || "" });
  const form = h(
    "form",
    { "aria-label": "Search devices", class: "search" },
    field("Address, name or owner", q, "The beginning is enough: 00:1a:7d, Printer, ali."),
    field("Status", status),
    field("Owner", owner),
    field("Group", group),
    field("Expires before", expires),
    h("button", { type: "submit" }, "Search")
  );
  const count = h("p", { class: "hint", "aria-live": "polite" });
  const results = h("div", {});
  const next = h("button", { type: "button", disabled: true }, "Next page");
  const first = h("button", { type: "button" }, "First page");
  root.append(form, count, results, h("div", { class: "buttons" }, first, next));

  const filters = () => ({
    q: q.value.trim(),
    status: status.value === "any" ? "" : status.value,
    owner: owner.value.trim(),
    group: group.value.trim(),
    expires_before: expires.value,
  });

  let cursor = null;
  async function load(after) {
    const f = filters();
    const p = { ...f, limit: PAGE, after: after || "" };
    if (f.expires_before) p.expires_before = f.expires_before + "T00:00:00Z";
    const r = await api("GET", "/v1/devices" + query(p));
    const rows = (r.devices || []).map((d) => [
      h("a", { href: "#/devices/" + encodeURIComponent(d.mac) }, d.mac),
      d.name || "",
      d.model || "",
      d.owner || "",
      d.status,
      d.certificate ? day(d.certificate.not_after) : "",
    ]);
    results.replaceChildren(table("Devices", ["Address", "Name", "Model", "Owner", "Status", "Expires"], rows, "No device matches."));
    count.textContent = rows.length + (rows.length === 1 ? " device" : " devices") + " on this page";
    cursor = r.next || null;
    next.disabled = !cursor;
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    // Keep the search in the address so that Back comes back to it; the
    // hash change draws the page again with these values.
    const want = "#/devices" + query(filters());
    if (location.hash !== want) location.hash = want;
    else busy(form.querySelector("button[type=submit]"), () => load(null));
  });
  next.addEventListener("click", () => busy(next, () => load(cursor)));
  first.addEventListener("click", () => busy(first, () => load(null)));
  await load(null);
  return null;
}

// ---------------------------------------------------------------------
// One device

async function renderDevice(root, mac) {
  const d = await api("GET", "/v1/devices/" + encodeURIComponent(mac));
  root.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/devices" }, "Devices")),
    h("h2", { tabindex: "-1", class: "page-title" }, "Device " + d.mac)
  );
  const reload = async (message) => {
    const again = root.ownerDocument.getElementById("page");
    again.replaceChildren();
    await renderDevice(again, d.mac);
    if (message) notice(message);
  };

  const cert = d.certificate;
  const onHold = (d.certificates || []).find((c) => c.status === "revoked" && c.revocation_reason === "certificateHold");
  root.append(
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Name"),
      h("dd", {}, d.name || "—"),
      h("dt", {}, "Model"),
      h("dd", {}, d.model || "—"),
      h("dt", {}, "Owner"),
      h("dd", {}, d.owner || "—"),
      h("dt", {}, "Status"),
      h("dd", { class: "status " + d.status }, d.status),
      h("dt", {}, "Groups"),
      h("dd", {}, (d.groups || []).join(", ") || "—"),
      h("dt", {}, "Current certificate"),
      h("dd", {}, cert ? cert.serial + ", until " + when(cert.not_after) : "none"),
      d.renew_requested ? [h("dt", {}, "Renewal"), h("dd", {}, "requested: the device renews at its next contact")] : null
    )
  );

  // --- actions ---------------------------------------------------------
  const actions = [];
  if (can("revoke") && cert && cert.status === "active") {
    const b = h("button", { type: "button", class: "danger" }, "Revoke…");
    b.addEventListener("click", async () => {
      const reason = select(REASONS, "unspecified");
      const ok = await confirmDialog(
        "Revoke device " + d.mac,
        h(
          "div",
          {},
          h("p", {}, "Revoke the certificate of " + d.mac + " (" + (d.name || d.model || "no name") + ")? Access points and devices refuse it from now on."),
          field("Reason", reason, "certificateHold can be released later; the others are final.")
        ),
        "Revoke"
      );
      if (!ok) return;
      await busy(b, async () => {
        await api("POST", "/v1/devices/" + encodeURIComponent(d.mac) + "/revoke", { reason: reason.value });
        await reload("Revoked the certificate of " + d.mac + ".");
      });
    });
    actions.push(b);
    const r = h("button", { type: "button" }, "Force renewal");
    r.addEventListener("click", () =>
      busy(r, async () => {
        await api("POST", "/v1/devices/" + encodeURIComponent(d.mac) + "/renew-request");
        await reload(d.mac + " will renew its certificate at its next contact.");
      })
    );
    actions.push(r);
  }
  if (can("revoke") && onHold && !(cert && cert.status === "active")) {
    const u = h("button", { type: "button" }, "Release the hold");
    u.addEventListener("click", () =>
      busy(u, async () => {
        await api("POST", "/v1/devices/" + encodeURIComponent(d.mac) + "/unrevoke");
        await reload("Released the hold on " + d.mac + "; its certificate is valid again.");
      })
    );
    actions.push(u);
  }
  if (can("issue")) {
    const ri = h("button", { type: "button" }, "Re-intake");
    ri.addEventListener("click", () => (location.hash = "#/intake" + query({ mac: d.mac, replace: "1" })));
    actions.push(ri);
  }
  if (actions.length) root.append(h("section", { "aria-label": "Actions", class: "buttons actions" }, actions));

  // --- owner, groups, validity (security, admin) ----------------------------
  if (can("policy")) {
    const own = h("input", { value: d.owner || "", maxlength: 128, autocomplete: "off" });
    const ownBtn = h("button", { type: "submit" }, "Change owner");
    const ownForm = h("form", { class: "inline", "aria-label": "Owner" }, field("New owner", own, "Empty: no owner."), ownBtn);
    ownForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      busy(ownBtn, async () => {
        const v = own.value.trim();
        await api("PUT", "/v1/devices/" + encodeURIComponent(d.mac) + "/owner", { owner: v || null });
        await reload(v ? "The owner of " + d.mac + " is now " + v + "." : d.mac + " has no owner now.");
      });
    });

    const list = h(
      "ul",
      { class: "groups" },
      (d.groups || []).map((g) => {
        const b = h("button", { type: "button", class: "small" }, "Remove from " + g);
        b.addEventListener("click", () =>
          busy(b, async () => {
            await api("DELETE", "/v1/groups/" + encodeURIComponent(g) + "/devices/" + encodeURIComponent(d.mac));
            await reload("Removed " + d.mac + " from " + g + ".");
          })
        );
        return h("li", {}, g + " ", b);
      })
    );
    const add = h("input", { maxlength: 128, autocomplete: "off" });
    const addBtn = h("button", { type: "submit" }, "Add to group");
    const addForm = h("form", { class: "inline", "aria-label": "Groups" }, field("Add to group", add), addBtn);
    addForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const g = add.value.trim();
      if (!g) return;
      busy(addBtn, async () => {
        await api("POST", "/v1/groups/" + encodeURIComponent(g) + "/devices", { mac: d.mac });
        await reload("Added " + d.mac + " to " + g + ".");
      });
    });

    const sections = [h("h3", {}, "Owner and groups"), ownForm, list, addForm];
    if ((d.groups || []).length) {
      const grp = select(d.groups, d.groups[0]);
      const days = h("input", { type: "number", min: 1, max: 36500, required: true });
      const vBtn = h("button", { type: "submit" }, "Shorten validity");
      const vForm = h(
        "form",
        { class: "inline", "aria-label": "Validity" },
        field("Group", grp),
        field("Longest validity in days", days, "Renewed certificates of the group's members last at most this long."),
        vBtn
      );
      vForm.addEventListener("submit", (ev) => {
        ev.preventDefault();
        busy(vBtn, async () => {
          await api("PUT", "/v1/groups/" + encodeURIComponent(grp.value) + "/validity", { max_validity_days: Number(days.value) });
          notice("Renewed certificates in " + grp.value + " now last at most " + days.value + " days.");
        });
      });
      sections.push(vForm);
    }
    root.append(h("section", { class: "panel" }, sections));
  }

  // --- certificates, decisions, audit -----------------------------------------
  root.append(
    h(
      "section",
      {},
      table(
        "Certificates",
        ["Serial", "Status", "From", "Until", "Reason"],
        (d.certificates || []).map((c) => [h("code", {}, c.serial), c.status, when(c.not_before), when(c.not_after), c.revocation_reason || ""]),
        "No certificate yet."
      )
    )
  );
  const [dec, aud] = await Promise.all([
    api("GET", "/v1/decisions" + query({ mac: d.mac, limit: 20 })).catch(keep401),
    api("GET", "/v1/audit" + query({ device: d.mac, limit: 50 })).catch(keep401),
  ]);
  root.append(
    h(
      "section",
      {},
      table(
        "Recent authorization decisions",
        ["Time", "Resource", "Action", "Decision", "Reason"],
        ((dec && dec.decisions) || []).map((x) => [when(x.at), x.resource, x.action, x.decision, x.reason]),
        "No decision about this device since provd started."
      )
    ),
    h(
      "section",
      {},
      table(
        "Audit trail",
        ["Seq", "Time", "Actor", "Action", "Object"],
        ((aud && aud.entries) || []).map((x) => [String(x.seq), when(x.at), x.actor, x.action, x.object]),
        "No audit entry names this device."
      )
    )
  );
  return null;
}

// A section that cannot load (a role without the right) stays empty, but a
// 401 still ends the session.
function keep401(e) {
  if (e instanceof ApiError && e.status === 401) throw e;
  return null;
}
