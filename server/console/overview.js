// Overview: counts by status, enrollments per day, certificates expiring per
// week, revocations in the last 24 hours (GET /v1/stats). The charts are SVG
// drawn here, each with a text description for screen readers and the
// numbers in a table under a disclosure.
"use strict";

import { api, h, table } from "./lib.js";

// A bar chart of [{label, count}] as <svg role="img">.
function barChart(title, points, describe) {
  const W = 600, H = 180, pad = 24, max = Math.max(1, ...points.map((p) => p.count));
  const bw = (W - pad) / Math.max(1, points.length);
  const bars = points.map((p, i) => {
    const bh = Math.round(((H - pad - 14) * p.count) / max);
    return h(
      "rect",
      { x: (pad + i * bw + 1).toFixed(1), y: H - pad - bh, width: Math.max(1, bw - 2).toFixed(1), height: bh, class: "bar" },
      h("title", {}, p.label + ": " + p.count)
    );
  });
  const first = points.length ? points[0].label : "";
  const last = points.length ? points[points.length - 1].label : "";
  return h(
    "svg",
    { role: "img", "aria-label": title + ": " + describe, viewBox: "0 0 " + W + " " + H, class: "chart" },
    h("line", { x1: pad, y1: H - pad, x2: W, y2: H - pad, class: "axis" }),
    h("text", { x: pad, y: 12, class: "tick" }, "max " + max),
    h("text", { x: pad, y: H - 6, class: "tick" }, first),
    h("text", { x: W, y: H - 6, class: "tick end" }, last),
    bars
  );
}

function numbers(caption, head, points) {
  return h(
    "details",
    {},
    h("summary", {}, "The numbers"),
    table(caption, head, points.map((p) => [p.label, String(p.count)]))
  );
}

export async function render(root) {
  root.append(h("h2", { tabindex: "-1", class: "page-title" }, "Overview"));
  const st = await api("GET", "/v1/stats");
  const dev = st.devices || {};
  const cert = st.certificates || {};

  const statuses = ["active", "pending", "revoked", "retired"];
  root.append(
    h(
      "section",
      { "aria-labelledby": "ov-status" },
      h("h3", { id: "ov-status" }, "Devices by status"),
      h(
        "ul",
        { class: "tiles" },
        statuses.map((k) => h("li", { class: "tile " + k }, h("span", { class: "count" }, String(dev[k] || 0)), " " + k)),
        h("li", { class: "tile" }, h("span", { class: "count" }, String(cert.active || 0)), " active certificates"),
        h("li", { class: "tile" }, h("span", { class: "count" }, String(cert.superseded || 0)), " superseded by renewal")
      )
    )
  );

  const perDay = (st.enrollments_per_day || []).map((p) => ({ label: p.day, count: p.count }));
  const total = perDay.reduce((a, p) => a + p.count, 0);
  root.append(
    h(
      "section",
      { "aria-labelledby": "ov-enroll" },
      h("h3", { id: "ov-enroll" }, "Enrollments per day"),
      barChart(
        "Enrollments per day",
        perDay,
        total + " enrollments in the last " + perDay.length + " days" + (perDay.length ? ", " + perDay[perDay.length - 1].count + " today" : "")
      ),
      numbers("Enrollments per day", ["Day", "Enrollments"], perDay)
    )
  );

  const perWeek = (st.expiring_per_week || []).map((p) => ({ label: p.week_start, count: p.count }));
  const soon = perWeek.reduce((a, p) => a + p.count, 0);
  root.append(
    h(
      "section",
      { "aria-labelledby": "ov-expire" },
      h("h3", { id: "ov-expire" }, "Certificates expiring per week"),
      barChart("Certificates expiring per week", perWeek, soon + " certificates expire in the next " + perWeek.length + " weeks"),
      numbers("Certificates expiring per week", ["Week from", "Certificates"], perWeek)
    )
  );

  root.append(
    h(
      "section",
      { "aria-labelledby": "ov-revoked" },
      h("h3", { id: "ov-revoked" }, "Revocations in the last 24 hours"),
      h("p", { class: "big" }, String(st.revocations_24h || 0)),
      h("p", { class: "hint" }, "Figures as of " + (st.generated_at || "now").replace("T", " ").replace("Z", " UTC") + ".")
    )
  );
}
