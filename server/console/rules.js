// Access rules: the policy (GET /v1/policy) as one table of rules; adding
// (POST /v1/rules, creating the resource first when it is new), editing
// (PUT /v1/rules/{id}: the old rule is replaced by the new one in one
// transaction) and deleting (DELETE /v1/rules/{id}) for security and admin;
// and the decision tester (POST /v1/authorize/try) for every role.
"use strict";

import { api, h, field, select, table, busy, can, notice, confirmDialog, clearMessages } from "./lib.js";

function subjectText(s) {
  if (s.device) return "device " + s.device;
  if (s.user) return "user " + s.user;
  if (s.group) return "group " + s.group;
  return "?";
}
function subjectKind(s) {
  return s.device ? "device" : s.user ? "user" : "group";
}
function conditions(r) {
  const c = [];
  if (r.time_from) c.push(r.time_from + "–" + r.time_until + " UTC");
  if (r.weekdays && r.weekdays.length && r.weekdays.length < 7) c.push(r.weekdays.join(" "));
  if (r.valid_from) c.push("from " + r.valid_from);
  if (r.valid_until) c.push("until " + r.valid_until);
  if (r.one_time) c.push(r.used_at ? "one time (used)" : "one time");
  return c.join(", ");
}

export async function render(root) {
  root.append(h("h2", { tabindex: "-1", class: "page-title" }, "Access rules"));
  const tableBox = h("div", {});
  const formBox = h("div", {});
  root.append(tableBox);
  let policy = null;

  async function load() {
    policy = await api("GET", "/v1/policy");
    const rows = [];
    for (const res of policy.resources || []) {
      for (const r of res.rules || []) {
        const cells = [String(r.id), subjectText(r.subject), res.name, r.action || "*", r.effect, conditions(r)];
        if (can("policy")) {
          const edit = h("button", { type: "button", class: "small" }, "Edit rule " + r.id);
          edit.addEventListener("click", () => startEdit(r, res.name));
          const del = h("button", { type: "button", class: "small danger" }, "Delete rule " + r.id);
          del.addEventListener("click", async () => {
            const ok = await confirmDialog(
              "Delete rule " + r.id,
              h("p", {}, "Delete rule " + r.id + " (" + r.effect + " " + subjectText(r.subject) + " on " + res.name + ")? Decisions change at once."),
              "Delete"
            );
            if (!ok) return;
            await busy(del, async () => {
              await api("DELETE", "/v1/rules/" + r.id);
              await load();
              notice("Deleted rule " + r.id + ".");
            });
          });
          cells.push(h("span", { class: "buttons" }, edit, del));
        }
        rows.push(cells);
      }
    }
    const head = ["Rule", "Subject", "Resource", "Action", "Effect", "Conditions"];
    if (can("policy")) head.push("Change");
    tableBox.replaceChildren(
      table("Rules", head, rows, "No rules yet: every question is denied."),
      h("p", { class: "hint" }, "Policy version " + policy.policy_version + ". A deny rule wins over an allow rule; with no rule that matches, the answer is deny.")
    );
  }

  // --- add / edit -------------------------------------------------------------
  const kind = select(["group", "user", "device"], "group");
  const subject = h("input", { required: true, maxlength: 128, autocomplete: "off" });
  const resource = h("input", { required: true, maxlength: 128, autocomplete: "off" });
  const action = h("input", { maxlength: 64, autocomplete: "off" });
  const effect = select(["allow", "deny"], "allow");
  const tFrom = h("input", { maxlength: 5, placeholder: "HH:MM", pattern: "[0-2][0-9]:[0-5][0-9]", autocomplete: "off" });
  const tUntil = h("input", { maxlength: 5, placeholder: "HH:MM", pattern: "[0-2][0-9]:[0-5][0-9]", autocomplete: "off" });
  const title = h("h3", { id: "rule-form-title" }, "Add a rule");
  const save = h("button", { type: "submit" }, "Add rule");
  const cancel = h("button", { type: "button", hidden: true }, "Cancel editing");
  const form = h(
    "form",
    { "aria-labelledby": "rule-form-title", class: "panel" },
    title,
    field("Subject type", kind),
    field("Subject", subject, "A group or user name, or a device address."),
    field("Resource", resource, "A new resource is created."),
    field("Action", action, "Empty: any action."),
    field("Effect", effect),
    field("From time", tFrom, "Optional, with Until time: a daily window in UTC."),
    field("Until time", tUntil),
    h("div", { class: "buttons" }, save, cancel)
  );
  let editing = null;

  function startEdit(r, resName) {
    editing = r.id;
    title.textContent = "Edit rule " + r.id;
    save.textContent = "Save rule";
    cancel.hidden = false;
    kind.value = subjectKind(r.subject);
    subject.value = r.subject.device || r.subject.user || r.subject.group || "";
    resource.value = resName;
    action.value = r.action && r.action !== "*" ? r.action : "";
    effect.value = r.effect;
    tFrom.value = r.time_from || "";
    tUntil.value = r.time_until || "";
    subject.focus();
  }
  function stopEdit() {
    editing = null;
    title.textContent = "Add a rule";
    save.textContent = "Add rule";
    cancel.hidden = true;
    form.reset();
  }
  cancel.addEventListener("click", stopEdit);

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearMessages();
    const body = {
      subject: { [kind.value]: subject.value.trim() },
      resource: resource.value.trim(),
      effect: effect.value,
    };
    if (action.value.trim()) body.action = action.value.trim();
    if (tFrom.value || tUntil.value) {
      body.time_from = tFrom.value.trim();
      body.time_until = tUntil.value.trim();
    }
    busy(save, async () => {
      const known = (policy.resources || []).some((r) => r.name === body.resource);
      if (!known) await api("POST", "/v1/resources", { name: body.resource });
      let r;
      if (editing) {
        const old = editing;
        r = await api("PUT", "/v1/rules/" + old, body);
        stopEdit();
        await load();
        notice("Rule " + old + " is replaced by rule " + r.id + ".");
      } else {
        r = await api("POST", "/v1/rules", body);
        form.reset();
        await load();
        notice("Added rule " + r.id + ".");
      }
    });
  });

  // --- decision tester ----------------------------------------------------------
  const tMac = h("input", { required: true, maxlength: 32, autocomplete: "off", spellcheck: "false" });
  const tAction = h("input", { maxlength: 64, autocomplete: "off" });
  const tRes = h("input", { required: true, maxlength: 128, autocomplete: "off" });
  const tryBtn = h("button", { type: "submit" }, "Try");
  const out = h("p", { id: "try-result", role: "status", class: "result" });
  const tester = h(
    "form",
    { "aria-labelledby": "try-title", class: "panel" },
    h("h3", { id: "try-title" }, "Try a question"),
    h("p", { class: "hint" }, "The answer POST /v1/authorize would give now, without using a one-time grant."),
    field("Device address", tMac),
    field("Action", tAction),
    field("Resource", tRes),
    tryBtn,
    out
  );
  tester.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearMessages();
    out.textContent = "";
    busy(tryBtn, async () => {
      const q = { device: { mac: tMac.value.trim() }, resource: tRes.value.trim() };
      if (tAction.value.trim()) q.action = tAction.value.trim();
      const r = await api("POST", "/v1/authorize/try", q);
      out.textContent = (r.decision === "allow" ? "Allow: " : "Deny: ") + r.reason;
      out.className = "result " + r.decision;
    });
  });

  await load();
  if (can("policy")) formBox.append(form);
  root.append(h("div", { class: "cols" }, formBox, tester));
  return null;
}
