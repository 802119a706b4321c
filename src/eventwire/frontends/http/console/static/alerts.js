// Alerts: the stored alerts in commit order, filtered and paged on the server
// (ListAlerts), and one alert's detail (GetAlert).
"use strict";

(() => {
  const { el, num } = window.EW;
  const PAGE_SIZE = 50;
  const RANGES = { hour: 3600e3, day: 86400e3, week: 7 * 86400e3, all: 0 };

  function input(id, label, value) {
    return el("div", { class: "field" }, el("label", { for: id }, label), el("input", { id, name: id, type: "text", autocomplete: "off", value: value || "" }));
  }

  function render(main, params) {
    if (params[0]) return detail(main, params[0]);
    const state = { tokens: [""], page: 0, filters: {} };
    const severity = el("select", { id: "a_min_severity" },
      [["", "any"], ["SEVERITY_INFO", "info"], ["SEVERITY_WARNING", "warning"], ["SEVERITY_CRITICAL", "critical"]].map(([v, l]) => el("option", { value: v }, l)));
    const range = el("select", { id: "a_range" }, [["day", "last day"], ["hour", "last hour"], ["week", "last week"], ["all", "everything stored"]].map(([v, l]) => el("option", { value: v }, l)));
    const results = el("div", { id: "alert-list", "aria-live": "polite" });
    const form = el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); apply(); } },
      input("a_device_id", "Device"),
      input("a_alert_type", "Alert type"),
      el("div", { class: "field" }, el("label", { for: "a_min_severity" }, "Minimum severity"), severity),
      el("div", { class: "field" }, el("label", { for: "a_range" }, "Time"), range),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Apply filters")),
    );
    main.append(el("h1", {}, "Alerts"), form, results);

    function apply() {
      const span = RANGES[range.value];
      const now = Date.now();
      state.filters = {
        device_id: form.querySelector("#a_device_id").value.trim(),
        alert_type: form.querySelector("#a_alert_type").value.trim(),
        min_severity: severity.value,
        start: span ? now - span : "",
      };
      state.tokens = [""];
      state.page = 0;
      load();
    }

    async function load() {
      results.setAttribute("aria-busy", "true");
      let reply;
      try {
        reply = await window.EW.api("/v1/alerts", { ...state.filters, page_size: PAGE_SIZE, page_token: state.tokens[state.page] });
      } catch (error) {
        results.replaceChildren(window.EW.errorBox(error));
        return;
      }
      state.tokens[state.page + 1] = reply.nextPageToken;
      const prev = el("button", { type: "button", class: "secondary", disabled: state.page === 0, onclick: () => { state.page -= 1; load(); } }, "Previous page");
      const next = el("button", { type: "button", class: "secondary", disabled: !reply.nextPageToken, onclick: () => { state.page += 1; load(); } }, "Next page");
      const first = state.page * PAGE_SIZE;
      results.replaceChildren(
        reply.alerts.length
          ? el("p", {}, `Alerts ${num(first + 1)} to ${num(first + reply.alerts.length)}, oldest first (commit order).`)
          : el("p", {}, "No alerts match."),
        el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Alerts" },
          el("table", { id: "alerts-table" },
            el("thead", {}, el("tr", {}, ["Time", "Severity", "Type", "Device", "Message"].map((h) => el("th", { scope: "col" }, h)))),
            el("tbody", {}, reply.alerts.map((a) => {
              const sev = a.severity.replace("SEVERITY_", "").toLowerCase();
              return el("tr", { class: "alert sev-" + sev },
                el("td", {}, window.EW.time(a.timestamp)),
                el("td", {}, el("span", { class: "badge sev-" + sev }, sev)),
                el("td", {}, el("a", { href: "#/alerts/" + encodeURIComponent(a.trackingId) }, a.alertType)),
                el("td", {}, a.deviceId),
                el("td", {}, a.message));
            })))),
        el("div", { class: "pager" }, prev, el("span", {}, "Page " + num(state.page + 1)), next),
      );
      results.setAttribute("aria-busy", "false");
    }

    apply();
    return null;
  }

  function detail(main, id) {
    const box = el("div", { id: "alert-detail" }, el("p", {}, "Loading…"));
    main.append(el("p", {}, el("a", { href: "#/alerts" }, "← All alerts")), el("h1", {}, "Alert"), box);
    window.EW.api("/v1/alerts/" + encodeURIComponent(id)).then((a) => {
      const attributes = Object.entries(a.attributes || {});
      box.replaceChildren(
        el("dl", { class: "detail" },
          el("dt", {}, "Tracking id"), el("dd", {}, a.trackingId),
          el("dt", {}, "Type"), el("dd", {}, a.alertType),
          el("dt", {}, "Device"), el("dd", {}, a.deviceId),
          el("dt", {}, "Severity"), el("dd", {}, a.severity.replace("SEVERITY_", "").toLowerCase()),
          el("dt", {}, "Time"), el("dd", {}, window.EW.time(a.timestamp)),
          el("dt", {}, "Received"), el("dd", {}, window.EW.time(a.receivedAt)),
          el("dt", {}, "Message"), el("dd", {}, a.message || "—"),
        ),
        el("h2", {}, "Attributes"),
        attributes.length
          ? el("table", { class: "kv" }, el("tbody", {}, attributes.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v)))))
          : el("p", {}, "None."),
      );
    }, (error) => box.replaceChildren(window.EW.errorBox(error)));
    return null;
  }

  window.EW.register({ id: "alerts", title: "Alerts", order: 30, render });
})();
