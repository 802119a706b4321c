// Volumes: events per name over the last hour, day or week (QueryEvents
// buckets), distinct users, and alerts by type and severity. A chart and, for
// every number in it, a table.
"use strict";

(() => {
  const { el, num } = window.EW;
  const RANGES = {
    hour: { label: "Last hour", bucket: "BUCKET_MINUTE", size: 60e3, count: 60 },
    day: { label: "Last day", bucket: "BUCKET_HOUR", size: 3600e3, count: 24 },
    week: { label: "Last week", bucket: "BUCKET_DAY", size: 86400e3, count: 7 },
  };
  const SERIES = 5;
  const ALERT_PAGES = 20;
  const QUERY_LIMIT = 10000;
  const SEVERITIES = ["SEVERITY_UNSPECIFIED", "SEVERITY_INFO", "SEVERITY_WARNING", "SEVERITY_CRITICAL"];

  function render(main, params) {
    const key = RANGES[params[0]] ? params[0] : "day";
    const range = RANGES[key];
    // Buckets are UTC and aligned to their size: the range ends at the end of the current one.
    const end = Math.ceil((Date.now() + 1) / range.size) * range.size;
    const start = end - range.size * range.count;
    const body = el("div", { id: "volumes", "data-start": start, "data-end": end, "aria-busy": "true" }, el("p", {}, "Loading…"));
    main.append(
      el("h1", {}, "Volumes"),
      el("nav", { class: "segmented", "aria-label": "Time range" },
        Object.entries(RANGES).map(([k, r]) =>
          el("a", { href: "#/volumes/" + k, class: "button-link", "aria-current": k === key ? "true" : null }, r.label))),
      el("p", {}, "From ", window.EW.time(start), " to ", window.EW.time(end), " (buckets are UTC-aligned)."),
      body,
    );
    let alive = true;
    load(body, range, start, end, () => alive).catch((error) => alive && body.replaceChildren(window.EW.errorBox(error)));
    return () => { alive = false; };
  }

  async function load(body, range, start, end, alive) {
    const query = (extra) => window.EW.api("/v1/events:query", { start, end, limit: QUERY_LIMIT, ...extra });
    const [buckets, names, overall] = await Promise.all([
      query({ bucket: range.bucket, group_by: "event_name" }),
      query({ bucket: "BUCKET_NONE", group_by: "event_name" }),
      query({ bucket: "BUCKET_NONE" }),
    ]);
    const alerts = await countAlerts(start, end);
    if (!alive()) return;
    const total = overall.rows.length ? overall.rows[0] : { count: 0, distinctUsers: 0 };
    const top = names.rows.slice().sort((a, b) => Number(b.count) - Number(a.count)).map((r) => r.group);
    const seriesOf = (name) => { const i = top.indexOf(name); return i < 0 || i >= SERIES ? SERIES : i; };
    const bars = [];
    for (let i = 0; i < range.count; i++) {
      const at = start + i * range.size;
      const parts = Array.from({ length: SERIES + 1 }, (_, s) => ({ series: s, value: 0 }));
      let sum = 0;
      for (const r of buckets.rows) {
        if (Number(r.bucketStart) !== at) continue;
        parts[seriesOf(r.group)].value += Number(r.count);
        sum += Number(r.count);
      }
      const d = new Date(at);
      const label = range.size < 86400e3 ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }) : d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
      bars.push({ label, title: `${label}: ${num(sum)} events`, parts });
    }
    const legend = top.slice(0, SERIES).map((n, i) => el("li", { class: "s" + i }, el("span", {}, n)));
    if (top.length > SERIES) legend.push(el("li", { class: "s" + SERIES }, el("span", {}, "other names")));
    const truncated = [buckets, names].some((q) => q.rows.length >= QUERY_LIMIT);
    window.EW.fill(body,
      el("div", { class: "cards" },
        el("dl", { class: "card" }, el("dt", {}, "Events"), el("dd", { id: "total-events" }, num(total.count))),
        el("dl", { class: "card" }, el("dt", {}, "Distinct users"), el("dd", { id: "total-users" }, num(total.distinctUsers))),
        el("dl", { class: "card" }, el("dt", {}, "Event names"), el("dd", {}, num(names.rows.length))),
        el("dl", { class: "card" }, el("dt", {}, "Alerts"), el("dd", { id: "total-alerts" }, (alerts.more ? "≥ " : "") + num(alerts.total))),
      ),
      truncated ? el("p", { class: "note" }, `The query returned its limit of ${num(QUERY_LIMIT)} rows: names past it are not shown.`) : null,
      el("h2", {}, "Events per bucket"),
      window.EW.barChart(bars, `Events per ${range.bucket.replace("BUCKET_", "").toLowerCase()}, stacked by event name`),
      el("ul", { class: "legend" }, legend),
      el("h2", {}, "Events by name"),
      el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Events by name" },
        el("table", { id: "names" },
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Event name"), el("th", { scope: "col", class: "num" }, "Events"), el("th", { scope: "col", class: "num" }, "Distinct users"))),
          el("tbody", {}, names.rows.map((r) => el("tr", { "data-name": r.group, "data-count": r.count },
            el("th", { scope: "row" }, r.group), el("td", { class: "num" }, num(r.count)), el("td", { class: "num" }, num(r.distinctUsers))))),
        )),
      el("h2", {}, "Alerts by type and severity"),
      alerts.more ? el("p", { class: "note" }, `Counted the first ${num(alerts.total)} alerts of the range; there are more.`) : null,
      alertTable(alerts),
    );
    body.setAttribute("aria-busy", "false");
  }

  async function countAlerts(start, end) {
    const counts = new Map();
    let total = 0;
    let token = "";
    for (let page = 0; page < ALERT_PAGES; page++) {
      const reply = await window.EW.api("/v1/alerts", { start, end, page_size: 1000, page_token: token });
      for (const a of reply.alerts) {
        const row = counts.get(a.alertType) || Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
        row[a.severity] += 1;
        counts.set(a.alertType, row);
        total += 1;
      }
      token = reply.nextPageToken;
      if (!token) return { counts, total, more: false };
    }
    return { counts, total, more: true };
  }

  function alertTable(alerts) {
    if (!alerts.total) return el("p", {}, "No alerts in this range.");
    const names = SEVERITIES.map((s) => s.replace("SEVERITY_", "").toLowerCase());
    return el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Alerts by type and severity" },
      el("table", { id: "alert-counts" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Alert type"), names.map((n) => el("th", { scope: "col", class: "num" }, n)), el("th", { scope: "col", class: "num" }, "total"))),
        el("tbody", {}, [...alerts.counts.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([type, row]) =>
          el("tr", {}, el("th", { scope: "row" }, type), SEVERITIES.map((s) => el("td", { class: "num" }, num(row[s]))),
            el("td", { class: "num" }, num(SEVERITIES.reduce((t, s) => t + row[s], 0)))))),
      ));
  }

  window.EW.register({ id: "volumes", title: "Volumes", order: 20, render });
})();
